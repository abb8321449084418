"""Cross-check `clip_score` (our jina-clip-v2) against jina's own modelling code on the same tiny
random release, end to end: the release's image transform and EVA tower, its XLM-RoBERTa with
the LoRA parametrisations and the default task's adapter, its mean pooling, and the score
``logit_scale.exp() * cos / 100``.

jina's code is remote code in two hub repos; fetch them where the hub is reachable, then:

    hf download jinaai/jina-clip-implementation --local-dir /tmp/jina-clip-code
    hf download jinaai/xlm-roberta-flash-implementation --local-dir /tmp/xlmr-code
    python3 -m venv /tmp/jinaenv
    /tmp/jinaenv/bin/pip install torch==2.14.1 torchvision==0.29.1 transformers==4.46.3 einops timm pillow safetensors
    .venv/bin/python tools/crosscheck_jina_clip.py --reference-python /tmp/jinaenv/bin/python \
        --clip-code /tmp/jina-clip-code --xlmr-code /tmp/xlmr-code

Each folder is imported as a package (relative imports work) with the folder also on the path
(so do flat copies). The towers (with the LoRA parametrisations) and the image transform are
jina's code; the few lines that assemble them, the adapter mask and the masked mean pooling are
written here as jina's `_build_vision_tower` and `HFTextEncoder` do them (a CPU run: no
xformers, no flash attention). The text config is jina-embeddings-v3's config.json
(the values below; the release reads it from the hub) updated with the release's
hf_model_config_kwargs, as jina's loader does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = ["a cat on the mat", "red dog", "two birds in the sky", "dog"]

REFERENCE = r"""
import importlib, json, shutil, sys
from functools import partial
from pathlib import Path
import torch
from PIL import Image
from safetensors.torch import load_file

clip_code, xlmr_code, d = (Path(a) for a in sys.argv[1:4])
def package(src, name):
    dst = d / "pkgs" / name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx"))
    (dst / "__init__.py").touch()
    sys.path[:0] = [str(d / "pkgs"), str(dst)]
    return lambda mod: importlib.import_module(f"{name}.{mod}")
clip, xlmr = package(clip_code, "jina_clip_code"), package(xlmr_code, "xlmr_code")

cfg = json.loads((d / "release" / "config.json").read_text())
sd = {k: v.float() for k, v in load_file(str(d / "release" / "model.safetensors")).items()}
vc, tc = cfg["vision_config"], cfg["text_config"]
vision = clip("eva_model").EVAVisionTransformer(
    img_size=vc["image_size"], patch_size=vc["patch_size"], num_classes=vc["embed_dim"], use_mean_pooling=False,
    init_values=vc["ls_init_value"], patch_dropout=vc["patch_dropout"], embed_dim=vc["width"], depth=vc["layers"],
    num_heads=vc["width"] // vc["head_width"], mlp_ratio=vc["mlp_ratio"], qkv_bias=vc["qkv_bias"],
    drop_path_rate=vc.get("drop_path_rate", 0.0), norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), xattn=False,
    rope=vc["rope_embeddings"], postnorm=vc["post_norm"], pt_hw_seq_len=vc["pt_hw_seq_len"],
    intp_freq=vc["intp_freq"], naiveswiglu=vc["naive_swiglu"], subln=vc["subln"], proj_type=vc["proj_type"])
print("vision load:", vision.load_state_dict({k[13:]: v for k, v in sd.items() if k.startswith("vision_model.")}))
pre = json.loads((d / "release" / "preprocessor_config.json").read_text())
transform = clip("transform").image_transform(
    pre["size"], is_train=False, mean=tuple(pre["mean"]), std=tuple(pre["std"]),
    resize_mode=pre["resize_mode"], interpolation=pre["interpolation"], fill_color=pre["fill_color"])

V3 = json.loads((d / "v3_config.json").read_text())
config = xlmr("configuration_xlm_roberta").XLMRobertaFlashConfig(**V3)
config.update(tc["hf_model_config_kwargs"])
config.use_flash_attn = False
config._name_or_path = str(d / "release")  # its model class loads the tokenizer from here
text = xlmr("modeling_lora").XLMRobertaLoRA(config, add_pooling_layer=False)
p = "text_model.transformer."
print("text load:", text.load_state_dict({k[len(p):]: v for k, v in sd.items() if k.startswith(p)}))
vision.eval(); text.eval()

ids = torch.tensor(json.loads((d / "ids.json").read_text()))
n = len(ids)
with torch.no_grad():
    px = torch.stack([transform(Image.open(d / f"img{i}.png").convert("RGB")) for i in range(n)])
    img = vision(px)
    mask = (ids != config.pad_token_id).long()
    task = torch.full((n,), config.lora_adaptations.index(tc["default_lora_task"]), dtype=torch.int32)
    h = text(input_ids=ids, attention_mask=mask, adapter_mask=task)[0]
    txt = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    cos = torch.nn.functional.cosine_similarity(img, txt, dim=-1)
torch.save({"image": img, "text": txt, "score": sd["logit_scale"].exp() * cos / 100}, d / "reference.pt")
"""

# jina-embeddings-v3's config.json (the fields jina's XLM-R reads); the release's
# hf_model_config_kwargs override some of them.
V3_CONFIG = {
    "vocab_size": 250002,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 8194,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-05,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "position_embedding_type": "rotary",
    "rotary_emb_base": 20000.0,
    "load_trained_adapters": True,
    "lora_adaptations": ["retrieval.query", "retrieval.passage", "separation", "classification", "text-matching"],
    "lora_alpha": 1,
    "lora_dropout_p": 0.0,
    "lora_rank": 4,
    "use_flash_attn": True,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-python", required=True, help="python of the reference venv")
    ap.add_argument("--clip-code", required=True, help="folder of jinaai/jina-clip-implementation's .py files")
    ap.add_argument("--xlmr-code", required=True, help="folder of jinaai/xlm-roberta-flash-implementation's .py files")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests" / "rewards"))
    from jina_release import write_release
    from PIL import Image

    from rewardflow.rewards import get_reward

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_release(d / "release")
        rng = np.random.default_rng(0)
        shapes = [(32, 32, 3), (40, 48, 3), (64, 45, 3), (33, 70, 3)]  # square, both orientations, odd crops
        images = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in shapes]
        for i, im in enumerate(images):
            Image.fromarray(im).save(d / f"img{i}.png")
        r = get_reward("clip_score", path=str(d / "release"), accept_license=True, device="cpu")
        r.ensure_loaded()
        ids = r.tokenizer(CAPTIONS, padding=True)["input_ids"]
        (d / "ids.json").write_text(json.dumps(ids))
        (d / "v3_config.json").write_text(json.dumps(V3_CONFIG))
        cmd = [args.reference_python, "-c", REFERENCE, args.clip_code, args.xlmr_code, str(d)]
        subprocess.run(cmd, check=True)
        ref = torch.load(d / "reference.pt", weights_only=True)
        pairs = [r.embeddings(im[None], [c]) for im, c in zip(images, CAPTIONS)]
        ours = torch.cat([r.score(im[None], [c]) for im, c in zip(images, CAPTIONS)])
    img, txt = (torch.cat([p[j] for p in pairs]) for j in (0, 1))
    norm = torch.nn.functional.normalize
    print(f"image embedding, max |ours - reference|: {(img - norm(ref['image'], dim=-1)).abs().max():.2e}")
    print(f"text embedding, max |ours - reference|: {(txt - norm(ref['text'], dim=-1)).abs().max():.2e}")
    print(f"reference {[f'{v:.6f}' for v in ref['score'].tolist()]}")
    print(f"ours      {[f'{v:.6f}' for v in ours.tolist()]}")
    print(f"max |ours - reference| score: {(ours - ref['score']).abs().max():.2e} (goal < 1e-4)")


if __name__ == "__main__":
    main()
