"""clip_score (jina-clip-v2) on a tiny random release in its own layout, loaded by our
implementation (no remote code), against a from-scratch computation of the published model
from the raw release tensors: LoRA folded by hand, rotary as complex rotations, PIL
preprocessing as the release's transform does it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jina_release import ALPHA, RANK, TASKS, TEXT, VISION, write_release

from rewardflow.rewards import get_reward
from rewardflow.rewards.backends.clip_common import CLIP_MEAN, CLIP_STD

CAPS = ["a cat on the mat", "red dog", "two birds in the sky", "dog"]
TEXT_BASE = 20000.0  # jina-embeddings-v3's rotary base, which the release's text config inherits


def _pixels(images: np.ndarray, size: int) -> torch.Tensor:
    from PIL import Image

    out = []
    for a in images:
        im = Image.fromarray(a)
        w, h = im.size
        s = size / min(w, h)
        im = im.resize((int(w * s), int(h * s)) if w != h else (size, size), Image.BICUBIC)
        left, top = round((im.size[0] - size) / 2), round((im.size[1] - size) / 2)
        im = im.crop((left, top, left + size, top + size))
        out.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1))
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    return (torch.stack(out) - mean) / std


def _rotate(x: torch.Tensor, angles: torch.Tensor, interleaved: bool) -> torch.Tensor:
    """Rotate pairs of x's last dim by `angles` (..., dim/2) as complex numbers."""
    d = x.shape[-1]
    re, im = (x[..., 0::2], x[..., 1::2]) if interleaved else (x[..., : d // 2], x[..., d // 2 :])
    z = torch.complex(re.double(), im.double()) * torch.polar(torch.ones_like(angles), angles)
    if interleaved:
        return torch.stack([z.real, z.imag], -1).flatten(-2).float()
    return torch.cat([z.real, z.imag], -1).float()


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5


def reference_image(sd, px):
    p, w, heads = "vision_model.", VISION["width"], VISION["width"] // VISION["head_width"]
    t = {k[len(p) :]: v.float() for k, v in sd.items() if k.startswith(p)}
    grid, hd = VISION["image_size"] // VISION["patch_size"], VISION["head_width"]
    # angle of head dim pair j: rows use the first half of the pairs, columns the second
    freq = 10000.0 ** (-torch.arange(hd // 4, dtype=torch.float64) / (hd // 4))
    pos = torch.arange(grid, dtype=torch.float64) * VISION["pt_hw_seq_len"] / grid
    rr, cc = torch.meshgrid(pos, pos, indexing="ij")
    ang = torch.cat([rr.reshape(-1, 1) * freq, cc.reshape(-1, 1) * freq], -1)  # (grid^2, hd/2)

    def ln(x, name):
        return F.layer_norm(x, x.shape[-1:], t[name + ".weight"], t[name + ".bias"], eps=1e-6)

    x = F.conv2d(px, t["patch_embed.proj.weight"], t["patch_embed.proj.bias"], stride=VISION["patch_size"])
    x = torch.cat([t["cls_token"].expand(len(px), 1, w), x.flatten(2).transpose(1, 2)], 1) + t["pos_embed"]
    for i in range(VISION["layers"]):
        b = f"blocks.{i}."
        h = ln(x, b + "norm1")
        q = h @ t[b + "attn.q_proj.weight"].T + t[b + "attn.q_bias"]
        k = h @ t[b + "attn.k_proj.weight"].T
        v = h @ t[b + "attn.v_proj.weight"].T + t[b + "attn.v_bias"]
        q, k, v = (_heads(y, heads) for y in (q, k, v))
        q = torch.cat([q[:, :, :1], _rotate(q[:, :, 1:], ang, True)], 2)  # the class token is not rotated
        k = torch.cat([k[:, :, :1], _rotate(k[:, :, 1:], ang, True)], 2)
        o = (_scores(q, k).softmax(-1) @ v).transpose(1, 2).reshape(x.shape)
        x = x + ln(o, b + "attn.inner_attn_ln") @ t[b + "attn.proj.weight"].T + t[b + "attn.proj.bias"]
        h = ln(x, b + "norm2")
        g = F.silu(h @ t[b + "mlp.w1.weight"].T + t[b + "mlp.w1.bias"]) * (
            h @ t[b + "mlp.w2.weight"].T + t[b + "mlp.w2.bias"]
        )
        x = x + ln(g, b + "mlp.ffn_ln") @ t[b + "mlp.w3.weight"].T + t[b + "mlp.w3.bias"]
    return ln(x, "norm")[:, 0]


def _weight(t, name, task):
    """Original weight plus the task's LoRA update, alpha / rank scaled."""
    a, b = t[name + ".parametrizations.weight.0.lora_A"][task], t[name + ".parametrizations.weight.0.lora_B"][task]
    delta = a @ b if "embeddings" in name else b @ a
    return t[name + ".parametrizations.weight.original"] + delta * ALPHA / RANK


def reference_text(sd, ids):
    p, h, heads = "text_model.transformer.roberta.", TEXT["hidden_size"], TEXT["num_attention_heads"]
    t, task = {k[len(p) :]: v.float() for k, v in sd.items() if k.startswith(p)}, TASKS.index("retrieval.query")
    real = ids != 1
    hd, n = h // heads, ids.shape[1]
    ang = torch.arange(n, dtype=torch.float64)[:, None] * TEXT_BASE ** (
        -torch.arange(0, hd, 2, dtype=torch.float64) / hd
    )

    def ln(x, name):
        return F.layer_norm(x, (h,), t[name + ".weight"], t[name + ".bias"], eps=1e-5)

    x = _weight(t, "embeddings.word_embeddings", task)[ids] + _weight(t, "embeddings.token_type_embeddings", task)[0]
    x = ln(x, "emb_ln")
    for i in range(TEXT["num_hidden_layers"]):
        b = f"encoder.layers.{i}."
        qkv = x @ _weight(t, b + "mixer.Wqkv", task).T + t[b + "mixer.Wqkv.bias"]
        q, k, v = (_heads(y, heads) for y in qkv.split(h, -1))
        s = _scores(_rotate(q, ang, False), _rotate(k, ang, False)) - 10000.0 * (~real)[:, None, None, :]
        o = (s.softmax(-1) @ v).transpose(1, 2).reshape(x.shape)
        x = ln(x + o @ _weight(t, b + "mixer.out_proj", task).T + t[b + "mixer.out_proj.bias"], b + "norm1")
        m = F.gelu(x @ _weight(t, b + "mlp.fc1", task).T + t[b + "mlp.fc1.bias"])
        x = ln(x + m @ _weight(t, b + "mlp.fc2", task).T + t[b + "mlp.fc2.bias"], b + "norm2")
    return (x * real[..., None]).sum(1) / real.sum(1, keepdim=True)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    d = tmp_path_factory.mktemp("jina-clip-v2")
    return d, write_release(d)


def _images(n=4, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [(32, 32), (40, 48), (64, 45), (33, 70)]  # square, both orientations, odd crops
    return [rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8) for i in range(n)]


def test_jina_clip_matches_the_published_model(release):
    d, sd = release
    r = get_reward("clip_score", path=str(d), accept_license=True, device="cpu")
    imgs = _images()
    img, txt = [], []
    for a, c in zip(imgs, CAPS):  # mixed sizes: one image per call
        i, t = r.embeddings(a[None], [c])
        img.append(i)
        txt.append(t)
    img, txt = torch.cat(img), torch.cat(txt)
    ref_img = torch.cat([reference_image(sd, _pixels(a[None], VISION["image_size"])) for a in imgs])
    tok = r.tokenizer(CAPS, padding=True)
    ref_txt = reference_text(sd, torch.tensor(tok["input_ids"]))
    torch.testing.assert_close(img, F.normalize(ref_img, dim=-1), atol=2e-5, rtol=0)
    torch.testing.assert_close(txt, F.normalize(ref_txt, dim=-1), atol=2e-5, rtol=0)
    # a batch gives each row what it gets alone (padding and batching do not leak)
    same = [np.ascontiguousarray(a[:32, :32]) for a in imgs]
    batch = r.score(np.stack(same), CAPS)
    alone = torch.cat([r.score(a[None], [c]) for a, c in zip(same, CAPS)])
    torch.testing.assert_close(batch, alone, atol=1e-6, rtol=0)
    want = float(sd["logit_scale"].float().exp()) / 100.0
    px = _pixels(np.stack(same), VISION["image_size"])
    cos = (F.normalize(reference_image(sd, px), dim=-1) * F.normalize(ref_txt, dim=-1)).sum(-1)
    torch.testing.assert_close(batch, want * cos, atol=1e-6, rtol=0)


def test_loads_from_the_hub_cache_offline(release, tmp_path, monkeypatch):
    from hub_helpers import fake_hub_cache

    d, _ = release
    fake_hub_cache(monkeypatch, tmp_path / "hub", {"jinaai/jina-clip-v2": d})
    monkeypatch.delenv("REWARDFLOW_JINA_CLIP", raising=False)
    monkeypatch.setenv("REWARDFLOW_ACCEPT_JINA_LICENSE", "1")  # how `rewardflow score` opts in
    imgs = np.stack([a[:32, :32] for a in _images()])
    cached = get_reward("clip_score", device="cpu").score(imgs, CAPS)
    direct = get_reward("clip_score", path=str(d), accept_license=True, device="cpu").score(imgs, CAPS)
    torch.testing.assert_close(cached, direct)


def test_opt_in_and_no_remote_code(release, monkeypatch):
    import transformers
    import transformers.dynamic_module_utils as dyn

    for env in ("REWARDFLOW_ACCEPT_JINA_LICENSE", "REWARDFLOW_TRUST_REMOTE_CODE"):
        monkeypatch.delenv(env, raising=False)
    one = (np.zeros((1, 32, 32, 3), np.uint8), ["a cat"])
    with pytest.raises(PermissionError, match="CC-BY-NC-4.0.*accept_license=True"):
        get_reward("clip_score", path=str(release[0]))
    with pytest.raises(PermissionError, match="CC-BY-NC-4.0"):  # the hub's code needs the licence too
        get_reward("clip_score", path=str(release[0]), trust_remote_code=True)

    def no_remote(*a, **k):
        raise AssertionError("the release's remote code must not be loaded without trust_remote_code=True")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", no_remote)
    monkeypatch.setattr(dyn, "get_class_from_dynamic_module", no_remote)
    r = get_reward("clip_score", path=str(release[0]), accept_license=True, device="cpu")
    assert r.score(*one).shape == (1,)
    monkeypatch.setenv("REWARDFLOW_TRUST_REMOTE_CODE", "1")  # the other route: the hub's own code
    with pytest.raises(AssertionError, match="remote code"):
        get_reward("clip_score", path=str(release[0]), accept_license=True, device="cpu").score(*one)


def test_every_tensor_is_used_and_every_weight_filled(release, tmp_path):
    from safetensors.torch import save_file

    from rewardflow.rewards.backends.jina_clip import JinaClip, convert_state_dict, read_config
    from rewardflow.rewards.backends.jina_text import XlmrConfig
    from rewardflow.rewards.backends.jina_vision import EvaConfig

    d, sd = release
    cfg = read_config(d)
    model = JinaClip(EvaConfig.from_release(cfg["vision_config"]), XlmrConfig.from_release(cfg["text_config"]))
    assert set(convert_state_dict(sd, cfg["text_config"])) == set(model.state_dict())
    lora = "text_model.transformer.roberta.encoder.layers.1.mlp.fc2.parametrizations.weight.0.lora_B"
    for name, change, msg in [
        ("missing", lambda t: t.pop("vision_model.blocks.1.attn.q_bias"), "missing tensors vision_model.blocks.1"),
        ("extra", lambda t: t.update({"vision_model.head.weight": torch.zeros(2)}), "unexpected.*head.weight"),
        ("shape", lambda t: t.update({"logit_scale": torch.zeros(2)}), "shape mismatch for logit_scale"),
        ("lora", lambda t: t.pop(lora), "fc2.parametrizations.weight.original has no matching"),
        ("orphan", lambda t: t.pop(lora.replace("0.lora_B", "original")), "LoRA factors without a weight.*fc2"),
    ]:
        bad = dict(sd)
        change(bad)
        (tmp_path / name).mkdir()
        for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
            (tmp_path / name / f).write_bytes((d / f).read_bytes())
        save_file(bad, str(tmp_path / name / "model.safetensors"))
        r = get_reward("clip_score", path=str(tmp_path / name), accept_license=True, device="cpu")
        with pytest.raises(ValueError, match=msg):
            r.score(np.zeros((1, 32, 32, 3), np.uint8), ["a cat"])


def test_bad_release_folders_say_what_is_wrong(release, tmp_path):
    import json

    d, _ = release
    with pytest.raises(FileNotFoundError, match="config.json"):
        get_reward("clip_score", path=str(tmp_path), accept_license=True).score(
            np.zeros((1, 32, 32, 3), np.uint8), ["a"]
        )
    one = (np.zeros((1, 32, 32, 3), np.uint8), ["a"])
    bare = tmp_path / "config_only"
    bare.mkdir()
    (bare / "config.json").write_bytes((d / "config.json").read_bytes())
    with pytest.raises(FileNotFoundError, match="no tokenizer.json.*model.safetensors, tokenizer.json"):
        get_reward("clip_score", path=str(bare), accept_license=True).score(*one)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (bare / f).write_bytes((d / f).read_bytes())
    with pytest.raises(FileNotFoundError, match=r"no \*.safetensors weights.*hf download jinaai/jina-clip-v2"):
        get_reward("clip_score", path=str(bare), accept_license=True).score(*one)
    (bare / "config.json").write_text(json.dumps({"model_type": "clip", "projection_dim": 768}))
    with pytest.raises(ValueError, match="not a jina-clip config.*'clip'"):
        get_reward("clip_score", path=str(bare), accept_license=True).score(*one)
    cfg = json.loads((d / "config.json").read_text())
    cfg["vision_config"]["post_norm"] = True
    (bare / "config.json").write_text(json.dumps(cfg))
    (bare / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="post_norm"):
        get_reward("clip_score", path=str(bare), accept_license=True).score(*one)


def test_bf16_keeps_the_rope_tables_exact(release):
    """bf16 weights, fp32 rotary tables; the mean pooling is in fp32 too."""
    d, _ = release
    fp32 = get_reward("clip_score", path=str(d), accept_license=True, device="cpu")
    bf16 = get_reward("clip_score", path=str(d), accept_license=True, device="cpu", dtype="bf16")
    imgs = np.stack([a[:32, :32] for a in _images()])
    s32, s16 = fp32.score(imgs, CAPS), bf16.score(imgs, CAPS)
    assert torch.equal(bf16.model.vision_model.rope_cos, fp32.model.vision_model.rope_cos)  # fp32, not rounded
    assert bf16.model.text_model.emb_ln.weight.dtype == torch.bfloat16
    torch.testing.assert_close(s16, s32, atol=2e-3, rtol=0)


def test_the_command_line_states_the_licence_without_a_traceback(tmp_path, monkeypatch, capsys):
    from rewardflow.cli import main

    for env in ("REWARDFLOW_ACCEPT_JINA_LICENSE", "REWARDFLOW_TRUST_REMOTE_CODE"):
        monkeypatch.delenv(env, raising=False)
    assert main(["score", "--data", str(tmp_path), "--rewards", "clip_score"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rewardflow score: error: clip_score uses jina-clip-v2") and "Traceback" not in err
    assert "REWARDFLOW_ACCEPT_JINA_LICENSE=1" in err


def test_instruction_and_matryoshka_settings_are_applied(release, tmp_path):
    """A config naming a default instruction and a truncated dimension gets both, as the
    release's encoders apply them (prefix before tokenising; cut, then normalise)."""
    import json
    import shutil

    d, sd = release
    alt = tmp_path / "alt"
    shutil.copytree(d, alt)
    cfg = json.loads((d / "config.json").read_text())
    cfg["text_config"]["default_instruction_task"], cfg["truncate_dim"] = "retrieval.query", 8
    (alt / "config.json").write_text(json.dumps(cfg))
    r = get_reward("clip_score", path=str(alt), accept_license=True, device="cpu")
    img, txt = r.embeddings(np.stack([a[:32, :32] for a in _images()]), CAPS)
    prefix = cfg["text_config"]["hf_model_config_kwargs"]["task_instructions"]["retrieval.query"]
    ids = torch.tensor(r.tokenizer([prefix + c for c in CAPS], padding=True)["input_ids"])
    assert img.shape == txt.shape == (4, 8)
    torch.testing.assert_close(txt, F.normalize(reference_text(sd, ids)[:, :8], dim=-1), atol=2e-5, rtol=0)


def test_the_remote_code_route_scores_with_the_release_encoders(release, monkeypatch):
    """trust_remote_code hands images and captions to the release's own encode_image /
    encode_text (numpy, normalised) and applies the same score formula; a stand-in with that
    API plays the hub's model here, which cannot be fetched."""
    import transformers

    class Release(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(2.0))
            self.seen = None

        def encode_image(self, images):
            self.seen = [im.size for im in images]
            return np.stack([F.normalize(torch.arange(1.0, 5.0) + i, dim=0).numpy() for i in range(len(images))])

        def encode_text(self, captions):
            return np.stack([F.normalize(torch.arange(4.0, 0.0, -1) * len(c), dim=0).numpy() for c in captions])

    stand_in = Release()
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda *a, **k: stand_in)
    r = get_reward("clip_score", path=str(release[0]), accept_license=True, trust_remote_code=True, device="cpu")
    imgs = np.zeros((2, 20, 30, 3), np.uint8)
    s = r.score(imgs, ["a cat", "two dogs"])
    assert stand_in.seen == [(30, 20), (30, 20)]  # PIL images, as the release takes them
    img = F.normalize(torch.stack([torch.arange(1.0, 5.0) + i for i in range(2)]), dim=-1)
    txt = F.normalize(torch.arange(4.0, 0.0, -1).expand(2, 4), dim=-1)
    torch.testing.assert_close(s, np.exp(2.0) * (img * txt).sum(-1) / 100, atol=1e-6, rtol=0)
