"""Real reward backends on TINY random CLIP models saved in the real file formats.

No hub is reachable and no package ships the weights, so each test writes a tiny model exactly
as the public release stores it (transformers save_pretrained dir, torch .pth state dicts,
open_clip ``{'state_dict': ...}``) and loads it through the backend's own loading code.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from tiny_clip import mlp_state_dict, tiny_clip, tokenizer_dir  # noqa: E402

from rewardflow.rewards import get_reward, list_rewards  # noqa: E402
from rewardflow.rewards.backends.clip_common import ClipImagePreprocessor, load_state_dict  # noqa: E402
from rewardflow.rewards.backends.openclip_convert import (  # noqa: E402
    hf_to_openclip_state_dict,
    openclip_to_hf_state_dict,
)

CAPS = ["a cat", "a red dog", "cat and dog", "dog"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_clip")
    vocab = tokenizer_dir(d)
    model = tiny_clip(vocab)
    model.save_pretrained(str(d))
    imgs = np.random.default_rng(0).integers(0, 256, size=(4, 48, 40, 3), dtype=np.uint8)
    return d, model, imgs


def _ref_embeds(model, d, imgs, caps):
    """Embeddings straight from the saved model, with the transformers tokenizer/processor."""
    from transformers import AutoTokenizer, CLIPImageProcessor

    tok = AutoTokenizer.from_pretrained(str(d))(caps, padding=True, return_tensors="pt")
    px = CLIPImageProcessor.from_pretrained(str(d))(images=list(imgs), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        i = model.get_image_features(pixel_values=px).pooler_output
        t = model.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).pooler_output
    return F.normalize(i, dim=-1), F.normalize(t, dim=-1)


def test_registered_and_lazy(tiny):
    d, _, _ = tiny
    assert {"aesthetic_score", "pick_a_score_score", "hpsv2_score", "clip_score", "openai_clip_score"} <= set(
        list_rewards()
    )
    r = get_reward("pick_a_score_score", path=str(d), device="cpu")
    assert r.model is None and r.dtype == torch.float32  # nothing loads before the first score
    # importing the backends must not import transformers (it is imported on first score)
    code = "import sys, rewardflow.rewards.backends; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_torch_preprocessing_matches_clip_image_processor(tiny):
    d, _, imgs = tiny
    from transformers import CLIPImageProcessor

    ref = CLIPImageProcessor.from_pretrained(str(d))(images=list(imgs), return_tensors="pt")["pixel_values"]
    ours = ClipImagePreprocessor.from_dir(d)(imgs, torch.device("cpu"), torch.float32)
    assert ours.shape == ref.shape == (4, 3, 32, 32)
    # PIL and torch bicubic differ by rounding (PIL resamples on uint8): ~1/255 / std
    assert (ours - ref).abs().mean() < 0.02


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_aesthetic_score(tiny, tmp_path, fmt):
    d, model, imgs = tiny
    sd = mlp_state_dict(16)
    f = tmp_path / f"head.{fmt}"
    if fmt == "pth":
        torch.save(sd, f)
    else:
        from safetensors.torch import save_file

        save_file(sd, str(f))
    r = get_reward("aesthetic_score", path=str(d), mlp_path=str(f), device="cpu", batch_size=3)
    s = r.score(imgs)  # no captions needed
    e = F.normalize(model.get_image_features(pixel_values=r.preprocess(imgs, r.device, r.dtype)).pooler_output, dim=-1)
    x = e.detach()
    for i in [0, 2, 4, 6, 7]:
        x = F.linear(x, sd[f"layers.{i}.weight"], sd[f"layers.{i}.bias"])
    torch.testing.assert_close(s, x[:, 0] / 10, rtol=1e-5, atol=1e-6)
    ref_e, _ = _ref_embeds(model, d, imgs, CAPS)
    assert F.cosine_similarity(e, ref_e).min() > 0.99  # same image embedding as transformers' own processor


def test_aesthetic_errors(tiny, tmp_path):
    d, _, imgs = tiny
    with pytest.raises(FileNotFoundError, match="sac\\+logos\\+ava1-l14-linearMSE"):
        get_reward("aesthetic_score", path=str(d), device="cpu").score(imgs)
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache.*allow_download"):
        get_reward("aesthetic_score", path=str(d), mlp_path="someone/nowhere/head.pth", device="cpu").score(imgs)
    torch.save(mlp_state_dict(768), tmp_path / "h.pth")
    with pytest.raises(ValueError, match="768-d"):
        get_reward("aesthetic_score", path=str(d), mlp_path=str(tmp_path / "h.pth"), device="cpu").score(imgs)
    with pytest.raises(FileNotFoundError, match="huggingface-cli download openai/clip-vit-large-patch14"):
        get_reward("aesthetic_score", mlp_path=str(tmp_path / "h.pth"), device="cpu").score(imgs)
    with pytest.raises(FileNotFoundError, match="not found"):
        get_reward("aesthetic_score", path=str(tmp_path / "nope"), mlp_path=str(tmp_path / "h.pth")).score(imgs)


def test_pickscore_and_openai_clip_score(tiny, tmp_path):
    d, model, imgs = tiny
    ri, rt = _ref_embeds(model, d, imgs, CAPS)
    cos_ref = (ri * rt).sum(-1)
    s = get_reward("pick_a_score_score", path=str(d), device="cpu", batch_size=3).score(imgs, CAPS)
    torch.testing.assert_close(s, np.exp(2.5) * cos_ref / 100, atol=2e-3, rtol=0)
    assert s.std() > 1e-3  # scores differ per pair
    c = get_reward("openai_clip_score", path=str(d), device="cpu").score(imgs, CAPS)
    torch.testing.assert_close(c, (100 * cos_ref).clamp_min(0), atol=0.2, rtol=0)
    # PickScore_v1 ships weights only: the tokenizer comes from the processor repo
    wd = tmp_path / "weights_only"
    model.save_pretrained(str(wd))
    with pytest.raises(FileNotFoundError, match="laion/CLIP-ViT-H-14"):
        get_reward("pick_a_score_score", path=str(wd), device="cpu").score(imgs, CAPS)
    s2 = get_reward("pick_a_score_score", path=str(wd), processor_path=str(d), device="cpu").score(imgs, CAPS)
    torch.testing.assert_close(s2, s)
    with pytest.raises(ValueError, match="needs captions"):
        get_reward("pick_a_score_score", path=str(d)).score(imgs)


def test_logit_scale_is_the_saved_value_under_bf16(tiny, tmp_path):
    """exp(ln 100) stays 100 when the model runs in bf16 (where the parameter rounds to 98.9)."""
    import math
    import shutil

    from safetensors.torch import load_file, save_file

    d, _, imgs = tiny
    c = tmp_path / "clip100"
    shutil.copytree(d, c)
    sd = load_file(str(c / "model.safetensors"))
    sd["logit_scale"] = torch.tensor(math.log(100.0))
    save_file(sd, str(c / "model.safetensors"))
    r = get_reward("pick_a_score_score", path=str(c), device="cpu", dtype="bf16")
    r.score(imgs, CAPS)
    assert abs(math.exp(float(r.model.logit_scale)) - 100.0) > 0.5  # the bf16 copy is off
    assert r.logit_scale() == pytest.approx(100.0, abs=1e-4)


def test_clip_score_requires_opt_in():
    with pytest.raises(PermissionError, match="CC-BY-NC.*accept_license=True.*trust_remote_code=True"):
        get_reward("clip_score")


# ---- HPS v2: open_clip checkpoints ------------------------------------------------------------


def _oc_block(x, sd, p, heads, mask=None):
    c = x.shape[-1]
    mha = torch.nn.MultiheadAttention(c, heads, batch_first=True)  # open_clip's own attention module
    mha.load_state_dict(
        {
            "in_proj_weight": sd[p + "attn.in_proj_weight"],
            "in_proj_bias": sd[p + "attn.in_proj_bias"],
            "out_proj.weight": sd[p + "attn.out_proj.weight"],
            "out_proj.bias": sd[p + "attn.out_proj.bias"],
        }
    )
    h = F.layer_norm(x, (c,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
    x = x + mha(h, h, h, need_weights=False, attn_mask=mask)[0]
    h = F.layer_norm(x, (c,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
    h = F.linear(
        F.gelu(F.linear(h, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])),
        sd[p + "mlp.c_proj.weight"],
        sd[p + "mlp.c_proj.bias"],
    )
    return x + h


@torch.no_grad()
def _openclip_forward(sd, px, ids, heads=2, layers=2):
    """A from-scratch open_clip ViT/text forward on open_clip-named weights (independent of the converter)."""
    w = sd["visual.conv1.weight"]
    x = F.conv2d(px, w, stride=w.shape[-1]).flatten(2).transpose(1, 2)
    c = x.shape[-1]
    x = torch.cat([sd["visual.class_embedding"].expand(len(x), 1, c), x], 1) + sd["visual.positional_embedding"]
    x = F.layer_norm(x, (c,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    for i in range(layers):
        x = _oc_block(x, sd, f"visual.transformer.resblocks.{i}.", heads)
    img = F.layer_norm(x[:, 0], (c,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"]) @ sd["visual.proj"]
    t = sd["token_embedding.weight"][ids] + sd["positional_embedding"][: ids.shape[1]]
    mask = torch.full((ids.shape[1],) * 2, float("-inf")).triu(1)
    for i in range(layers):
        t = _oc_block(t, sd, f"transformer.resblocks.{i}.", heads, mask)
    t = F.layer_norm(t, (t.shape[-1],), sd["ln_final.weight"], sd["ln_final.bias"])
    txt = t[torch.arange(len(ids)), ids.argmax(-1)] @ sd["text_projection"]
    return F.normalize(img, dim=-1), F.normalize(txt, dim=-1)


def test_hpsv2_openclip_checkpoint(tiny, tmp_path):
    d, model, imgs = tiny
    oc = hf_to_openclip_state_dict(model.state_dict())
    assert "visual.transformer.resblocks.1.attn.in_proj_weight" in oc and oc["visual.proj"].shape == (32, 16)
    back = openclip_to_hf_state_dict(oc)
    ref_sd = model.state_dict()
    assert back.keys() == ref_sd.keys() and all(torch.equal(back[k], ref_sd[k]) for k in back)
    ckpt = tmp_path / "HPS_tiny.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in oc.items()}}, ckpt)  # as saved from DDP
    assert load_state_dict(ckpt).keys() == oc.keys()

    r = get_reward("hpsv2_score", path=str(ckpt), processor_path=str(d), device="cpu", text_heads=2, vision_heads=2)
    s = r.score(imgs, CAPS)
    px = r.preprocess(imgs, r.device, r.dtype)
    ie, te = r.image_embeds(imgs), r.text_embeds(CAPS)
    with torch.no_grad():
        hi = F.normalize(model.get_image_features(pixel_values=px).pooler_output, dim=-1)
    torch.testing.assert_close(ie, hi, atol=1e-5, rtol=0)
    torch.testing.assert_close(s, (ie * te).sum(-1))
    # independent open_clip-style forward on the raw checkpoint tensors, one caption at a time
    for k, cap in enumerate(CAPS):
        ids = r.tokenizer([cap], return_tensors="pt")["input_ids"]
        oi, ot = _openclip_forward(oc, px[k : k + 1], ids)
        torch.testing.assert_close(oi[0], ie[k], atol=1e-5, rtol=0)
        torch.testing.assert_close(ot[0], te[k], atol=1e-5, rtol=0)


def test_hpsv2_rejects_unknown_keys_and_missing_files(tiny, tmp_path):
    d, model, imgs = tiny
    oc = hf_to_openclip_state_dict(model.state_dict())
    oc["visual.transformer.resblocks.0.ls_1.gamma"] = torch.ones(32)
    torch.save({"state_dict": oc}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="ls_1"):
        get_reward(
            "hpsv2_score",
            path=str(tmp_path / "bad.pt"),
            processor_path=str(d),
            device="cpu",
            vision_heads=2,
            text_heads=2,
        ).score(imgs, CAPS)
    with pytest.raises(FileNotFoundError, match="xswu/HPSv2.*allow_download"):
        get_reward("hpsv2_score", processor_path=str(d), device="cpu").score(imgs, CAPS)


def test_sciscore_from_a_directory_and_from_the_hub_cache(tiny, tmp_path, monkeypatch):
    from hub_helpers import fake_hub_cache

    d, model, imgs = tiny
    ri, rt = _ref_embeds(model, d, imgs, CAPS)
    s = get_reward("sciscore_score", path=str(d), device="cpu").score(imgs, CAPS)
    torch.testing.assert_close(s, np.exp(2.5) * (ri * rt).sum(-1) / 100, atol=2e-3, rtol=0)
    fake_hub_cache(monkeypatch, tmp_path / "hub", {"Jialuo21/SciScore": d})
    monkeypatch.delenv("REWARDFLOW_SCISCORE_MODEL", raising=False)
    cached = get_reward("sciscore_score", device="cpu")  # the default hub id, offline, from the cache
    torch.testing.assert_close(cached.score(imgs, CAPS), s)


def test_clip_family_backends_load_offline_from_their_default_hub_ids(tiny, tmp_path, monkeypatch):
    """Each backend's default weights, laid out in a fake Hugging Face cache as on the hub (PickScore
    weights-only beside the LAION processor repo, the HPS v2.1 file in its repo, an aesthetic head
    file), give the same scores as the same files passed as local paths."""
    import os

    from hub_helpers import fake_hub_cache

    d, model, imgs = tiny
    pick, hps, aes = (tmp_path / n for n in ("pick", "hps", "aes"))
    model.save_pretrained(str(pick))  # PickScore_v1 ships weights only
    hps.mkdir()
    aes.mkdir()
    torch.save({"state_dict": hf_to_openclip_state_dict(model.state_dict())}, hps / "HPS_v2.1_compressed.pt")
    torch.save(mlp_state_dict(16), aes / "head.pth")
    repos = {
        "yuvalkirstain/PickScore_v1": pick,
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": d,
        "xswu/HPSv2": hps,
        "openai/clip-vit-large-patch14": d,
        "someone/aesthetic-head": aes,
    }
    fake_hub_cache(monkeypatch, tmp_path / "hub", repos)
    for env in [k for k in os.environ if k.startswith("REWARDFLOW_")]:
        monkeypatch.delenv(env)
    heads = {"text_heads": 2, "vision_heads": 2}
    cases = [
        ("pick_a_score_score", {}, {"path": str(pick), "processor_path": str(d)}),
        ("hpsv2_score", heads, dict(heads, path=str(hps / "HPS_v2.1_compressed.pt"), processor_path=str(d))),
        (
            "aesthetic_score",
            {"mlp_path": "someone/aesthetic-head/head.pth"},
            {"path": str(d), "mlp_path": str(aes / "head.pth")},
        ),
        ("openai_clip_score", {}, {"path": str(d)}),
    ]
    for name, cached_kw, local_kw in cases:
        cached = get_reward(name, device="cpu", **cached_kw).score(imgs, CAPS)
        torch.testing.assert_close(cached, get_reward(name, device="cpu", **local_kw).score(imgs, CAPS), msg=name)


def test_rewards_on_the_same_clip_share_the_model_and_its_image_pass(tiny, tmp_path):
    """aesthetic_score and openai_clip_score on one CLIP: loaded once, the image tower run once
    per batch for both, the scores those of separate models."""
    d, model, imgs = tiny
    torch.save(mlp_state_dict(16), tmp_path / "head.pth")
    alone = get_reward("aesthetic_score", path=str(d), mlp_path=str(tmp_path / "head.pth")).score(imgs)
    aes = get_reward("aesthetic_score", path=str(d), mlp_path=str(tmp_path / "head.pth"), batch_size=2)
    clip = get_reward("openai_clip_score", path=str(d), batch_size=2)
    aes.ensure_loaded()
    clip.ensure_loaded()
    assert aes.model is clip.model  # one copy of the weights
    calls = []
    hook = aes.model.vision_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        # the scoring job's order: every reward on a batch (shard chunk), then the next batch
        for s in (slice(0, 2), slice(2, 4)):
            got_aes = aes.score(imgs[s])
            got_clip = clip.score(imgs[s], CAPS[s])
            torch.testing.assert_close(got_aes, alone[s])
            ri, rt = _ref_embeds(model, d, imgs[s], CAPS[s])
            torch.testing.assert_close(got_clip, (100 * (ri * rt).sum(-1)).clamp_min(0), atol=0.2, rtol=0)
    finally:
        hook.remove()
    assert len(calls) == 2  # one image pass per batch, not one per reward


def test_pil_preprocessing_in_threads_is_the_same(monkeypatch):
    """The releases' per-image PIL preprocessing runs in threads; the pixels do not change, and
    under a launcher each rank takes its share of the cores."""
    from rewardflow.rewards.backends.clip_common import PILPreprocessor, _cpu_share

    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in [(40, 48, 3), (64, 45, 3), (33, 70, 3)]]
    cpu = torch.device("cpu")
    threaded = PILPreprocessor(32, threads=3)(imgs, cpu, torch.float32)
    assert torch.equal(threaded, PILPreprocessor(32, threads=1)(imgs, cpu, torch.float32))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    alone = _cpu_share()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(alone * 4))
    assert alone >= 1 and _cpu_share() == 1
