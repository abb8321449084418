"""Our sampler vs the authors' (miro-t2i) on the same random released-layout network.

Builds the authors' RIN at a CPU-sized configuration with random weights, saves it in the
released layout, loads it into RewardFlowPipeline, and times both samplers on the same text
embeddings, reward targets and generator (Euler, multi-reward CFG, fp32), interleaved run by
run. Prints images/s of each, their ratio (ours / official, median of --repeats) and the largest
difference between the two outputs.

    python benchmarks/release_sampler_speed.py                 # CPU, 4 images x 20 steps
    python benchmarks/release_sampler_speed.py --device cuda   # on a GPU (bf16 autocast is the authors' default there)

Needs ``pip install --no-deps miro-t2i einops``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' release stand-ins

KEYS = ("clip_score", "aesthetic_score", "image_reward_score", "pick_a_score_score")
KEYS += ("hpsv2_score", "vqa_score", "sciscore_score")


def network_config(args) -> dict:
    return dict(
        data_size=32,
        data_dim=args.data_dim,
        num_input_channels=4,
        num_latents=args.latents,
        latents_dim=args.width,
        label_dim=args.text_dim,
        num_cond_tokens=77,
        num_processing_layers=args.layers,
        num_blocks=args.blocks,
        patch_size=2,
        read_write_heads=8,
        compute_heads=8,
        num_text_registers=16,
        coherence_keys=list(KEYS),
        use_cond_rin_block=True,
        concat_cond_token_to_latents=False,
        use_self_conditioning=True,
    )


def build_release(args, d: Path):
    from miro.models.networks.rin import CADRINTextCond
    from miro.models.postprocessing import VAEPostProcessing
    from miro.models.preconditioning import FlowPrecond
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net_cfg = network_config(args)
    pre_cfg = dict(num_latents=args.latents, latents_dim=args.width, logvar_channels=128)
    net, pre = CADRINTextCond(**net_cfg).eval(), FlowPrecond(**pre_cfg).eval()
    with torch.no_grad():
        for p in list(net.parameters()) + list(pre.parameters()):
            if p.is_floating_point():
                p.add_(0.05 * torch.randn_like(p))
    parts = {"network": net, "preconditioning": pre, "postprocessing": VAEPostProcessing(True)}
    save_file({f"{n}.{k}": v.contiguous() for n, m in parts.items() for k, v in m.state_dict().items()},
              str(d / "model.safetensors"))  # fmt: skip
    uncond = torch.randn(1, args.text_dim)
    np.save(d / "uncond_embedding.npy", uncond.numpy())
    cfg = {"network": net_cfg, "preconditioning": pre_cfg, "postprocessing": {"channel_wise_normalisation": True}}
    (d / "config.json").write_text(json.dumps(dict(cfg, data_resolution=32, max_text_len=77)))
    return net, pre, uncond


def make_samplers(args, d, net, pre, uncond):
    from miro.models.scheduler import LinearScheduler
    from miro.pipeline import MiroPipeline
    from release_helpers import FixedText, KeepLatents

    from rewardflow.sampling.miro_release import load_release_model
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    g = torch.Generator().manual_seed(1)
    emb = torch.randn(args.images, 77, args.text_dim, generator=g).to(args.device)
    mask = (torch.arange(77)[None] < torch.randint(5, 40, (args.images, 1), generator=g)).to(args.device)
    post = KeepLatents()
    ref = MiroPipeline(net, pre, torch.nn.Identity(), post, LinearScheduler(), uncond, {"data_resolution": 32})
    ref = ref.to(args.device)
    ref.text_encoder = ref.tokenizer = FixedText(emb, mask)
    model = load_release_model(d, device=args.device)[0]
    # bf16 autocast on CUDA, as the authors' sampler does there (and as a released folder loads)
    ours = RewardFlowPipeline(model, text_encoder=None, config={"guidance_scale": 7.0, "autocast": "bfloat16"})
    if args.compile:
        ours.compile(dynamic=False)
    kw = dict(num_inference_steps=args.steps, guidance_scale=7.0)

    def official():
        ref(["p"] * args.images, generator=torch.Generator(args.device).manual_seed(0), output_type="numpy", **kw)
        return post.latents.float().cpu()

    def rewardflow():
        gen = torch.Generator(args.device).manual_seed(0)
        out = ours(
            prompt_embeds=emb, prompt_attention_mask=mask, generator=gen, output_type="latent", progress=False, **kw
        )
        return out.images

    return official, rewardflow


def timed(fn, device):
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--width", type=int, default=256, help="latent width (the released models: 1024)")
    ap.add_argument("--data-dim", type=int, default=128)
    ap.add_argument("--latents", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--text-dim", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", action="store_true", help="torch.compile our network (warm-up excluded from timing)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        net, pre, uncond = build_release(args, Path(tmp))
        official, ours = make_samplers(args, Path(tmp), net, pre, uncond)
        official(), ours()  # warm-up
        times, outs = {"official": [], "rewardflow": []}, {}
        for _ in range(args.repeats):
            for name, fn in (("official", official), ("rewardflow", ours)):
                dt, out = timed(fn, args.device)
                times[name].append(dt)
                outs[name] = out
    med = {k: statistics.median(v) for k, v in times.items()}
    ips = {k: args.images / v for k, v in med.items()}
    print(f"load average {os.getloadavg()[0]:.2f}, {torch.get_num_threads()} threads, device {args.device}")
    mode = "compiled" if args.compile else "eager"
    print(f"{args.images} images x {args.steps} Euler steps, CFG w = 7, network width {args.width}, ours {mode}")
    for k in ("official", "rewardflow"):
        print(f"  {k:10s} {ips[k]:.3f} images/s (median of {args.repeats}: {med[k]:.3f} s)")
    print(f"  ratio ours / official: {ips['rewardflow'] / ips['official']:.2f}x")
    print(f"  max |ours - official| over the latents: {(outs['rewardflow'] - outs['official']).abs().max():.2e}")


if __name__ == "__main__":
    main()
