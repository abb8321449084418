#!/usr/bin/env bash
# The GPU checks of benchmarks/ as one command for a lent GPU machine, in priority order, each
# under its own time limit; logs and JSON go to $OUT (default gpu-checks/). That machine has
# python3 with torch, transformers, safetensors, accelerate and einops but no network, so the
# authors' sampler package (for the sampler comparison) travels as a wheel in .whl/:
#
#   echo /.whl/ >> .git/info/exclude; python3 -m pip download --no-deps miro-t2i==0.1.4 -d .whl   # here
#   bash benchmarks/gpu_checks.sh                       # there (carry .whl); about 7 minutes at most
#   bash benchmarks/gpu_checks.sh train_dit_350m        # one check by name
#
# Checks: jina_clip (the clip_score reward at real size, bf16), release_sampler (ours against the
# authors' sampler at the released size), train_rin_miro and train_dit_350m (bf16 training
# throughput, eager and compiled, with MFU).
set -u
out=${OUT:-gpu-checks}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

check() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "=== $name (at most $limit s)"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  echo "exit status $?" >>"$out/$name.log"
  tail -n 12 "$out/$name.log"
}

run() {
  case $1 in
    jina_clip) check jina_clip 120 python3 benchmarks/jina_clip_speed.py --device cuda --batch 32 --repeats 5 ;;
    release_sampler) check release_sampler 120 python3 benchmarks/release_sampler_speed.py --device cuda \
      --width 1024 --data-dim 256 --latents 256 --blocks 4 --layers 4 --text-dim 2048 --images 4 --steps 20 --repeats 3 ;;
    train_rin_miro) check train_rin_miro 200 python3 benchmarks/gpu_train_350m.py --preset rin-miro --steps 50 --out "$out" ;;
    train_dit_350m) check train_dit_350m 200 python3 benchmarks/gpu_train_350m.py --steps 50 --out "$out" ;;
    *) echo "unknown check $1 (jina_clip, release_sampler, train_rin_miro, train_dit_350m)" && return 2 ;;
  esac
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" |
  tee -a "$out/gpu.txt"
for name in "${@:-jina_clip release_sampler train_rin_miro}"; do
  for n in $name; do run "$n"; done
done
