"""Released MIRO checkpoints through RewardFlowPipeline: hub cache and variants, our controls on
them, save_pretrained, the CLI, the released configuration's size, and clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from release_helpers import KEYS, NETWORK, PRECOND, fake_hub_cache, official_network, save_release
from safetensors.torch import load_file, save_file

from rewardflow.models import build_model, model_config_from_preset
from rewardflow.sampling.pipeline import RewardFlowPipeline


@pytest.fixture
def hub(tmp_path, monkeypatch, parts, one_thread):
    """A fake offline HF cache holding the encoder, the VAE and an ablations repo with one variant."""
    te_dir, vae_dir = parts
    repo = tmp_path / "repo"
    net, pre = official_network(coherence_keys=list(KEYS[1:]))
    save_release(repo / "miro-no-clip", net, pre, coherence_keys=list(KEYS[1:]))
    repos = {"google/flan-t5-xl": te_dir, "stabilityai/sdxl-vae": vae_dir, "nicolas-dufour/miro-ablations": repo}
    return fake_hub_cache(monkeypatch, tmp_path / "hub", repos)


def test_hub_id_with_variant_loads_offline_and_our_controls_run(hub, tmp_path):
    pipe = RewardFlowPipeline.from_pretrained("nicolas-dufour/miro-ablations", variant="miro-no-clip")
    assert pipe.reward_keys == KEYS[1:] and pipe.text_encoder.max_length == 77
    assert pipe.config["guidance_scale"] == 7.0 and pipe.config["num_inference_steps"] == 10
    kw = dict(num_inference_steps=3, progress=False, output_type="pt", seed=0)
    img = pipe("a red fox", **kw).images
    assert img.shape == (1, 3, 16, 16) and torch.isfinite(img).all()  # through the tiny SDXL-layout VAE
    iso = pipe.isolate("aesthetic_score", "a red fox", **kw).images
    pair = pipe.pairwise("aesthetic_score", "hpsv2_score", 0.25, "a red fox", **kw).images
    heun = pipe("a red fox", solver="heun", **kw).images
    anchored = pipe.isolate("aesthetic_score", "a red fox", anchor={"hpsv2_score": 0.25}, **kw).images
    for other in (iso, pair, heun, anchored):
        assert not torch.equal(other, img)
    assert not torch.equal(anchored, iso)
    # batch invariance: image 1 of a pair equals the same seed alone
    two = pipe(["a", "b"], batch_invariant=True, **dict(kw, seed=[4, 5])).images
    one = pipe("b", batch_invariant=True, **dict(kw, seed=5)).images
    assert torch.equal(two[1:], one)
    # the released config records its reward dropout (0 here): unspecified rewards are refused
    with pytest.raises(ValueError, match="reward_dropout = 0"):
        pipe("a red fox", reward_targets={"vqa_score": None}, **kw)


def test_best_of_n_and_target_search_on_a_release(hub):
    from rewardflow.sampling.selection import best_of_n
    from rewardflow.sampling.target_search import reward_metric, target_search

    pipe = RewardFlowPipeline.from_pretrained("nicolas-dufour/miro-ablations", variant="miro-no-clip")
    res = best_of_n(pipe, "a fox", 3, "sharpness", seed=0, num_inference_steps=2, output_type="pt", progress=False)
    assert res.images.shape == (1, 3, 16, 16)
    out = target_search(
        pipe, ["a fox"], reward_metric("sharpness"), {"aesthetic_score": [0.0, 1.0]}, num_inference_steps=2
    )
    assert len(out.rows) == 2


def test_save_pretrained_gives_our_format_with_the_same_samples(hub, tmp_path):
    pipe = RewardFlowPipeline.from_pretrained("nicolas-dufour/miro-ablations", variant="miro-no-clip")
    ours = pipe.save_pretrained(tmp_path / "ours")
    again = RewardFlowPipeline.from_pretrained(ours)
    kw = dict(num_inference_steps=3, progress=False, output_type="latent", seed=2)
    assert torch.equal(pipe("a fox", **kw).images, again("a fox", **kw).images)
    assert json.loads((ours / "model" / "config.json").read_text())["backbone"] == "rin"


def test_cli_samples_a_released_model_from_the_cache(hub, tmp_path):
    from rewardflow.cli import main

    rc = main(
        ["sample", "--model", "nicolas-dufour/miro-ablations", "--variant", "miro-no-clip", "--prompts", "a fox"]
        + ["--steps", "2", "--seed", "0", "--out", str(tmp_path / "out")]
    )
    assert rc == 0 and len(list((tmp_path / "out" / "images").glob("*.png"))) == 1


def test_released_configuration_has_the_official_parameter_count():
    from miro.models.networks.rin import CADRINTextCond
    from miro.models.preconditioning import FlowPrecond

    released = dict(NETWORK, data_size=32, data_dim=256, num_latents=256, latents_dim=1024, label_dim=2048)
    released.update(num_processing_layers=4, num_blocks=4, read_write_heads=16, compute_heads=16)
    released.update(data_mlp_multiplier=4, num_text_registers=16)
    with torch.device("meta"):
        net = CADRINTextCond(**released)
        pre = FlowPrecond(**dict(PRECOND, num_latents=256, latents_dim=1024, logvar_channels=128))
        ours = build_model(model_config_from_preset("rin-miro", reward_keys=KEYS))
    theirs = sum(p.numel() for m in (net, pre) for p in m.parameters() if p.is_floating_point())
    # ours also learns its null caption (the released models use a fixed empty-prompt embedding)
    assert ours.num_parameters() - ours.cond.null_text.numel() == theirs
    assert 340e6 < theirs < 370e6


def test_bad_release_folders_say_what_is_wrong(tmp_path, parts, monkeypatch):
    from rewardflow.sampling.miro_release import load_release_model

    net, pre = official_network()
    d, _ = save_release(tmp_path / "m", net, pre)
    # weights that do not fit the config: the mismatched tensors are named
    cfg = json.loads((d / "config.json").read_text())
    cfg["network"]["num_blocks"] = 3
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"missing tensors blocks\.2\."):
        load_release_model(d)
    cfg["network"]["num_blocks"], cfg["network"]["data_dim"] = 2, 32
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        ValueError, match=r"shape mismatch for blocks\.0\.read\.attn\.k_norm\.bias: file \(4,\) vs config \(8,\)"
    ):
        load_release_model(d)
    cfg["network"]["data_dim"] = 16
    (d / "config.json").write_text(json.dumps(cfg))
    sd = load_file(str(d / "model.safetensors"))
    save_file(dict(sd, **{"network.extra_head.weight": torch.zeros(2)}), str(d / "model.safetensors"))
    with pytest.raises(ValueError, match="unexpected tensors extra_head.weight"):
        load_release_model(d)
    (d / "uncond_embedding.npy").unlink()
    with pytest.raises(FileNotFoundError, match="missing uncond_embedding.npy.*config.json, model.safetensors"):
        RewardFlowPipeline.from_pretrained(d)


def test_missing_text_encoder_or_vae_names_the_download(tmp_path, parts, monkeypatch):
    te_dir, vae_dir = parts
    fake_hub_cache(monkeypatch, tmp_path / "hub", {"stabilityai/sdxl-vae": vae_dir})
    d, _ = save_release(tmp_path / "m", *official_network())
    with pytest.raises(FileNotFoundError, match="hf download google/flan-t5-xl"):
        RewardFlowPipeline.from_pretrained(d)
    shutil.copytree(te_dir, d / "text_encoder")  # a local copy beside the weights is used
    assert RewardFlowPipeline.from_pretrained(d).text_encoder.dim == 24
    with pytest.raises(FileNotFoundError, match="hf download other/vae"):
        RewardFlowPipeline.from_pretrained(d, vae="other/vae")
    with pytest.raises(FileNotFoundError, match="no variant 'nope'"):
        RewardFlowPipeline.from_pretrained(d, variant="nope")


def test_the_web_page_drives_a_released_model(hub):
    from rewardflow.ui import Studio

    pipe = RewardFlowPipeline.from_pretrained("nicolas-dufour/miro-ablations", variant="miro-no-clip")
    studio = Studio(pipe, "nicolas-dufour/miro-ablations", variant="miro-no-clip")
    info = studio.info()
    assert info["reward_keys"] == list(KEYS[1:]) and info["reward_null"] is False  # trained without dropout
    res = studio.generate({"prompt": "a red fox", "steps": 2, "mode": "isolate", "isolate": "vqa_score"})
    assert len(res["images"]) == 1 and "--variant miro-no-clip" in res["command"]
    assert res["targets"]["negative"]["vqa_score"] == 0.0 and res["targets"]["positive"]["vqa_score"] == 1.0
