"""save_pretrained / from_pretrained: exact round trip, no pickle, clear errors on bad files."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from rewardflow.models import (
    DenoiserConfig,
    DenoiserModel,
    DiT,
    UNet,
    build_model,
    load_model,
    model_config_from_preset,
    strip_compile_prefix,
)

KEYS = ("a", "b")


def randomised(preset, seed=0, **kw):
    torch.manual_seed(seed)
    m = build_model(model_config_from_preset(preset, reward_keys=KEYS, **kw))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m.eval()


def batch():
    g = torch.Generator().manual_seed(3)
    return (
        torch.randn(2, 3, 32, 32, generator=g),
        torch.rand(2, generator=g),
        torch.randn(2, 4, 384, generator=g),
        torch.ones(2, 4, dtype=torch.bool),
        torch.rand(2, 2, generator=g),
    )


@pytest.mark.parametrize("preset,cls", [("dit-tiny", DiT), ("unet-tiny", UNet), ("dit-tiny-learned", DiT)])
def test_round_trip_bit_identical(tmp_path, preset, cls):
    kw = {"pos_embed": "learned"} if preset.endswith("learned") else {}
    m = randomised(preset.replace("-learned", ""), **kw)
    m.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    assert doc["_format_version"] == 1 and doc["_class_name"] == cls.__name__ and doc["backbone"] == m.config.backbone
    for loaded in (
        DenoiserModel.from_pretrained(tmp_path / "m"),
        load_model(tmp_path / "m"),
        cls.from_pretrained(tmp_path / "m"),
    ):
        assert isinstance(loaded, cls) and loaded.config == m.config
        assert torch.equal(loaded(*batch()), m(*batch()))


def test_from_pretrained_device_dtype_and_wrong_class(tmp_path):
    randomised("dit-tiny").save_pretrained(tmp_path)
    m = DenoiserModel.from_pretrained(tmp_path, device="cpu", dtype=torch.bfloat16)
    assert next(m.parameters()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="not a UNet"):
        UNet.from_pretrained(tmp_path)


def test_config_json_round_trip():
    c = model_config_from_preset("unet-demo", reward_keys=("x", "y", "z"), extra={"note": 1})
    c2 = DenoiserConfig.from_json(c.to_json())
    assert c2 == c and isinstance(c2.channel_mult, tuple) and isinstance(c2.reward_keys, tuple)


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_model(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)
    randomised("dit-tiny").save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_model(tmp_path)


def test_corrupt_files(tmp_path):
    randomised("dit-tiny").save_pretrained(tmp_path)
    w = tmp_path / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(ValueError, match="model.safetensors.*corrupt"):
        load_model(tmp_path)
    w.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="model.safetensors"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        load_model(tmp_path)


def test_config_mismatching_weights(tmp_path):
    randomised("dit-tiny").save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["hidden_size"] = 64  # shapes no longer match
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="model.safetensors.*shape mismatch"):
        load_model(tmp_path)
    cfg["hidden_size"], cfg["depth"] = 32, 3  # a block the file lacks
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="missing tensors blocks.2"):
        load_model(tmp_path)
    cfg["depth"], cfg["reward_keys"], cfg["num_rewards"] = 2, [], 0  # reward weights now unexpected
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unexpected tensors cond.reward"):
        load_model(tmp_path)
    cfg["_format_version"] = 99
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="_format_version"):
        load_model(tmp_path)


def test_orig_mod_prefix_stripped(tmp_path):
    m = randomised("dit-tiny")
    assert strip_compile_prefix({"_orig_mod.blocks.0._orig_mod.q.weight": 1}) == {"blocks.0.q.weight": 1}
    # saving through a torch.compile wrapper writes plain names (compile is lazy: nothing traced here)
    compiled = torch.compile(m, backend="eager")
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())
    from rewardflow.models import save_model

    save_model(compiled, tmp_path / "a")
    assert not any("_orig_mod" in k for k in load_file(str(tmp_path / "a" / "model.safetensors")))
    # a foreign file saved from the compiled state dict still loads
    m.save_pretrained(tmp_path / "b")
    save_file({k: v.contiguous() for k, v in compiled.state_dict().items()}, str(tmp_path / "b" / "model.safetensors"))
    assert torch.equal(load_model(tmp_path / "b")(*batch()), m(*batch()))
