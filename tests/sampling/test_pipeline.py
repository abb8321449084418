import json

import numpy as np
import pytest
import torch

from rewardflow.sampling.pipeline import RewardFlowPipeline

from pipeline_helpers import REWARD_KEYS, tiny_bins, tiny_model


def _pt(pipe, prompts, **kw):
    kw.setdefault("progress", False)
    return pipe(prompts, output_type="pt", **kw)


@pytest.mark.parametrize("preset", ["dit-tiny", "unet-tiny"])
def test_same_prompt_seed_same_image_in_batch_of_1_and_8(tiny_text_encoder, preset):
    pipe = RewardFlowPipeline(tiny_model(preset), tiny_text_encoder, config={"num_inference_steps": 3})
    prompts = ["a red circle", "two blue squares", "a green triangle left of a circle", "x", "y", "z", "w", "v"]
    big = _pt(pipe, prompts, seed=list(range(100, 108)))
    assert big.images.abs().max() > 0.05 and big.images.std() > 0.05  # not a trivial model
    for i in (0, 5):
        one = _pt(pipe, prompts[i], seed=100 + i)
        # float32 batch-size-dependent kernel blocking: ~1e-6 on values of order 1 (measured 1.3e-6 to 3e-6).
        torch.testing.assert_close(one.images[0], big.images[i], atol=1e-5, rtol=0)
    # The pipeline adds no batch dependence of its own: in float64 the match is bit for bit.
    pipe.to(dtype=torch.float64)
    big = _pt(pipe, prompts, seed=list(range(100, 108)))
    assert torch.equal(_pt(pipe, prompts[3], seed=103).images[0], big.images[3])


@pytest.mark.parametrize("preset", ["dit-tiny", "unet-tiny"])
def test_batch_invariant_gives_bit_identical_images_in_float32(tiny_text_encoder, preset):
    pipe = RewardFlowPipeline(tiny_model(preset), tiny_text_encoder, config={"num_inference_steps": 3})
    prompts = ["a red circle", "two blue squares", "a green triangle left of a circle", "x", "y", "z", "w", "v"]
    big = _pt(pipe, prompts, seed=list(range(100, 108)), batch_invariant=True)
    assert big.settings["batch_invariant"] is True
    for i in range(8):
        assert torch.equal(_pt(pipe, prompts[i], seed=100 + i).images[0], big.images[i]), i


def test_seed_conventions_and_defaults(pipe):
    out = _pt(pipe, ["a", "b"], seed=7, num_images_per_prompt=2)
    assert out.prompts == ["a", "a", "b", "b"] and out.seeds == [7, 8, 9, 10]
    assert out.reward_targets == {k: 1.0 for k in REWARD_KEYS}
    assert out.negative_reward_targets == {k: 0.0 for k in REWARD_KEYS}
    assert out.settings["guidance_scale"] == 7.0 and out.settings["solver"] == "euler"
    again = _pt(pipe, ["b"], seed=[9, 10], num_images_per_prompt=2)
    torch.testing.assert_close(again.images, out.images[2:], atol=1e-5, rtol=0)
    assert not torch.allclose(out.images[0], out.images[1])
    # seed=None draws from torch's RNG and reports the seeds, so any image can be remade.
    torch.manual_seed(3)
    a = _pt(pipe, "a")
    torch.manual_seed(3)
    assert _pt(pipe, "a").seeds == a.seeds
    g = torch.Generator().manual_seed(1)
    assert _pt(pipe, "a", generator=g).seeds == _pt(pipe, "a", generator=torch.Generator().manual_seed(1)).seeds


def test_targets_change_images_and_partial_dicts_fill(pipe):
    hq = _pt(pipe, "a circle", seed=0)
    cu = _pt(
        pipe, "a circle", seed=0, reward_targets={"sharpness": 0.25}, negative_reward_targets={"colorfulness": 0.5}
    )
    assert cu.reward_targets == {"sharpness": 0.25, "colorfulness": 1.0}
    assert cu.negative_reward_targets == {"sharpness": 0.0, "colorfulness": 0.5}
    assert not torch.allclose(hq.images, cu.images)
    iso = pipe.isolate("colorfulness", "a circle", seed=0, output_type="pt", progress=False)
    assert iso.negative_reward_targets == {"sharpness": 1.0, "colorfulness": 0.0}
    pw = pipe.pairwise("sharpness", "colorfulness", 0.25, "a circle", seed=0, output_type="pt", progress=False)
    assert pw.negative_reward_targets == {"sharpness": 0.25, "colorfulness": 0.75}
    ia = pipe.isolate("colorfulness", "a circle", anchor={"sharpness": 0.5}, seed=0, output_type="pt", progress=False)
    assert ia.reward_targets == {"sharpness": 0.5, "colorfulness": 1.0}
    assert ia.negative_reward_targets == {"sharpness": 0.5, "colorfulness": 0.0}
    assert not torch.allclose(ia.images, iso.images)
    pa = pipe.pairwise(
        "sharpness", "colorfulness", 0.25, "a circle", anchor={}, seed=0, output_type="pt", progress=False
    )
    assert torch.equal(pa.images, pw.images)  # an empty anchor is the default: others at 1
    assert torch.equal(pipe.high_quality("a circle", seed=0, output_type="pt", progress=False).images, hq.images)


def test_guidance_modes(pipe):
    base = dict(seed=0)
    plain = _pt(pipe, "a circle", guidance_scale=0.0, **base)
    # With w = 0 the negative branch (text and rewards) has no effect.
    assert torch.equal(plain.images, _pt(pipe, "a circle", guidance_scale=0.0, negative_prompt="blurry", **base).images)
    g = _pt(pipe, "a circle", guidance_scale=3.0, **base)
    gn = _pt(pipe, "a circle", guidance_scale=3.0, negative_prompt="blurry", **base)
    assert not torch.allclose(g.images, plain.images) and not torch.allclose(g.images, gn.images)
    # 3-branch with w_t = w_r = 1 collapses to the plain conditional velocity v(c, s+).
    three = _pt(pipe, "a circle", guidance_scale=1.0, text_guidance_scale=1.0, **base)
    torch.testing.assert_close(three.images, plain.images, atol=1e-5, rtol=0)
    assert three.settings["text_guidance_scale"] == 1.0
    heun = _pt(pipe, "a circle", solver="heun", num_inference_steps=2, **base)
    assert heun.images.shape == plain.images.shape and heun.settings["solver"] == "heun"


def test_output_types(pipe):
    pil = pipe("a circle", seed=0, progress=False).images
    arr = pipe("a circle", seed=0, output_type="np", progress=False).images
    pt = _pt(pipe, "a circle", seed=0).images
    assert len(pil) == 1 and pil[0].size == (32, 32) and pil[0].mode == "RGB"
    assert arr.dtype == np.uint8 and arr.shape == (1, 32, 32, 3)
    assert np.array_equal(np.asarray(pil[0]), arr[0])
    assert pt.shape == (1, 3, 32, 32) and pt.min() >= -1 and pt.max() <= 1
    pipe.model.train()  # a trainer's model: sampled in eval mode, handed back in train mode
    assert torch.equal(_pt(pipe, "a circle", seed=0).images, pt) and pipe.model.training


def test_bad_inputs(pipe, baseline_pipe):
    with pytest.raises(ValueError, match="sharpness.*colorfulness|colorfulness.*sharpness") as e:
        pipe("a", reward_targets={"aesthetic": 1.0})
    assert "aesthetic" in str(e.value)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pipe("a", reward_targets={"sharpness": 1.5})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pipe("a", negative_reward_targets={"sharpness": -0.1})
    with pytest.raises(ValueError, match="baseline"):
        baseline_pipe("a", reward_targets={"sharpness": 1.0})
    with pytest.raises(ValueError, match="baseline"):
        baseline_pipe("a", text_guidance_scale=2.0)
    with pytest.raises(ValueError, match="empty"):
        pipe([])
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe("a", num_inference_steps=0)
    with pytest.raises(ValueError, match=r"guidance_scale must be a finite number >= 0.0, got -1"):
        pipe("a", guidance_scale=-1.0)
    with pytest.raises(ValueError, match=r"text_guidance_scale must be a finite number >= 0.0"):
        pipe("a", guidance_scale=1.0, text_guidance_scale=-2.0)
    with pytest.raises(ValueError, match="unknown solver"):
        pipe("a", solver="rk4")
    with pytest.raises(ValueError, match="2 seeds for 3"):
        pipe(["a", "b", "c"], seed=[1, 2])
    with pytest.raises(ValueError, match="output_type"):
        pipe("a", output_type="jpeg")
    with pytest.raises(ValueError, match="unknown reward key"):
        pipe.isolate("nope", "a")
    out = baseline_pipe("a", seed=0, output_type="pt", progress=False)  # a baseline samples fine
    assert out.reward_targets == {} and out.images.shape == (1, 3, 32, 32)


@pytest.mark.parametrize("text_scale", [None, 2.0])
def test_unspecified_target_samples_with_the_null_token(pipe, text_scale):
    # Make sharpness's null token equal to the token the model gives the value 0.5: "unspecified"
    # must then sample exactly what the target 0.5 samples, in both guidance modes.
    emb = pipe.model.cond.rewards
    with torch.no_grad():
        emb.null[0] = emb(torch.tensor([[0.5, 0.5]]))[0, 0]
    kw = dict(seed=3, output_type="pt", progress=False, guidance_scale=2.0, text_guidance_scale=text_scale)
    none = pipe(["a red circle", "two squares"], reward_targets={"sharpness": None}, **kw)
    half = pipe(
        ["a red circle", "two squares"],
        reward_targets={"sharpness": 0.5},
        negative_reward_targets={"sharpness": 0.5},
        **kw,
    )
    assert torch.allclose(none.images, half.images, atol=1e-5)
    assert none.reward_targets["sharpness"] is None and none.negative_reward_targets["sharpness"] is None
    one = pipe(
        ["a red circle", "two squares"],
        reward_targets={"sharpness": 1.0},
        negative_reward_targets={"sharpness": 1.0},
        **kw,
    )
    assert not torch.allclose(none.images, one.images, atol=1e-3)


def test_unspecified_target_needs_a_model_trained_with_reward_dropout(pipe, tiny_text_encoder):
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    from pipeline_helpers import tiny_model

    untrained = RewardFlowPipeline(
        pipe.model, tiny_text_encoder, tiny_bins(), config={"run_config": {"reward_dropout": 0.0}}
    )
    with pytest.raises(ValueError, match="reward_dropout = 0.*sharpness|sharpness.*reward_dropout = 0"):
        untrained("a", reward_targets={"sharpness": None})
    untrained("a", reward_targets={"sharpness": 0.5}, num_inference_steps=1, progress=False)  # values still fine
    no_null = RewardFlowPipeline(tiny_model(reward_null=False), tiny_text_encoder, tiny_bins())
    with pytest.raises(ValueError, match="no null reward tokens"):
        no_null("a", reward_targets={"colorfulness": None})
    trained = RewardFlowPipeline(
        pipe.model,
        tiny_text_encoder,
        tiny_bins(),
        config={"run_config": {"reward_dropout": 0.1}, "num_inference_steps": 1},
    )
    assert trained("a", reward_targets={"colorfulness": None}, progress=False).reward_targets["colorfulness"] is None


def test_save_from_pretrained_identical_images(pipe, tmp_path):
    pipe.config["guidance_scale"] = 4.0
    ref = _pt(pipe, ["a circle", "two squares"], seed=11)
    d = pipe.save_pretrained(tmp_path / "pipe")
    names = sorted(p.name for p in d.iterdir())
    assert names == ["bins.json", "model", "pipeline_config.json", "text_encoder.json"]
    te = json.loads((d / "text_encoder.json").read_text())
    assert te["max_length"] == 16 and "path" not in te  # a reference, no copied weights
    loaded = RewardFlowPipeline.from_pretrained(d)
    assert loaded.reward_keys == REWARD_KEYS and loaded.bins == pipe.bins and loaded.config["guidance_scale"] == 4.0
    assert torch.equal(_pt(loaded, ["a circle", "two squares"], seed=11).images, ref.images)
    d2 = pipe.save_pretrained(tmp_path / "copy", copy_text_encoder=True)
    assert (d2 / "text_encoder" / "config.json").is_file()
    assert torch.equal(
        _pt(RewardFlowPipeline.from_pretrained(d2), ["a circle", "two squares"], seed=11).images, ref.images
    )
    with pytest.raises(FileNotFoundError, match="not in the HF cache"):
        RewardFlowPipeline.from_pretrained("nobody/no-such-rewardflow-model")


def test_from_checkpoint(pipe, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    pipe.bins.save(data / "bins.json")
    ck = tmp_path / "run" / "checkpoints" / "step_0000010"
    pipe.model.save_pretrained(ck / "model")
    run = {"data": {"path": str(data), "text_encoder": str(pipe.text_encoder.model_id)}, "reward_dropout": 0.0}
    (ck / "train_config.json").write_text(json.dumps(run))
    loaded = RewardFlowPipeline.from_checkpoint(ck)
    assert loaded.text_encoder.max_length == 32  # the trainer's TextEncoder default
    loaded = RewardFlowPipeline.from_checkpoint(ck, text_encoder=pipe.text_encoder)
    assert loaded.bins == pipe.bins and loaded.config["run_config"] == run
    assert torch.equal(_pt(loaded, "a", seed=1, num_inference_steps=3).images, _pt(pipe, "a", seed=1).images)


def test_half_precision_model_keeps_fp32_ode_state(pipe):
    ref = _pt(pipe, "a circle", seed=0, num_inference_steps=2).images
    pipe.to(dtype=torch.bfloat16)
    out = _pt(pipe, "a circle", seed=0, num_inference_steps=2).images
    assert out.dtype == torch.float32 and (out - ref).abs().mean() < 0.05


def test_hub_id_resolves_through_the_hf_cache_offline(pipe, tmp_path, monkeypatch):
    import shutil

    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-rewardflow"
    snap = repo / "snapshots" / ("0" * 40)
    pipe.save_pretrained(tmp_path / "src")
    shutil.copytree(tmp_path / "src", snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    loaded = RewardFlowPipeline.from_pretrained("someone/tiny-rewardflow")
    assert torch.equal(_pt(loaded, "a", seed=2).images, _pt(pipe, "a", seed=2).images)


def test_missing_local_folder_is_not_mistaken_for_a_hub_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="pipeline directory not found"):
        RewardFlowPipeline.from_pretrained("runs/nope/models/miro")


def test_guidance_interval(pipe, baseline_pipe):
    base = dict(seed=0, num_inference_steps=4)  # Euler evaluates t = 1, 0.75, 0.5, 0.25
    for p, kw in ((pipe, {}), (pipe, {"text_guidance_scale": 2.0}), (baseline_pipe, {})):
        plain = _pt(p, "a circle", guidance_scale=0.0, **base)
        full = _pt(p, "a circle", guidance_scale=3.0, **kw, **base)
        # an interval holding every step time is ordinary guidance; one holding none is no guidance
        assert torch.equal(
            _pt(p, "a circle", guidance_scale=3.0, guidance_interval=(0.0, 1.0), **kw, **base).images, full.images
        )
        none = _pt(p, "a circle", guidance_scale=3.0, guidance_interval=(0.05, 0.2), **kw, **base)
        torch.testing.assert_close(none.images, plain.images, atol=1e-5, rtol=0)
        part = _pt(p, "a circle", guidance_scale=3.0, guidance_interval=(0.0, 0.6), **kw, **base)
        assert not torch.allclose(part.images, full.images) and not torch.allclose(part.images, plain.images)
        assert part.settings["guidance_interval"] == [0.0, 0.6]
    for bad in ((0.5, 0.5), (0.2, 1.5), "x", (1,)):
        with pytest.raises(ValueError, match="guidance_interval"):
            _pt(pipe, "a circle", guidance_interval=bad, **base)


def test_saved_default_guidance_and_explicit_override(pipe):
    base = dict(seed=0, num_inference_steps=3)
    plain_cfg = _pt(pipe, "a circle", guidance_scale=3.0, **base).images
    chosen = dict(guidance_scale=1.5, text_guidance_scale=2.0, guidance_interval=[0.0, 0.7])
    explicit = _pt(pipe, "a circle", **chosen, **base).images
    saved = dict(pipe.config)
    try:
        pipe.config.update(chosen)  # what a folder with a chosen default loads as
        assert torch.equal(_pt(pipe, "a circle", **base).images, explicit)
        # guidance_scale alone means plain CFG, not the saved three-branch / interval setting
        assert torch.equal(_pt(pipe, "a circle", guidance_scale=3.0, **base).images, plain_cfg)
    finally:
        pipe.config.clear()
        pipe.config.update(saved)
