"""Our RIN and pipeline against the authors' code (miro-t2i) on the same random weights: the
network velocity and latents, and a 10-step guided Euler sample from the same generator."""

from __future__ import annotations

import pytest
import torch
from release_helpers import KEYS, WIDTH, FixedText, KeepLatents, fake_hub_cache, official_network, save_release

from rewardflow.sampling.pipeline import RewardFlowPipeline


@pytest.fixture
def release(tmp_path, monkeypatch, parts, one_thread):
    te_dir, vae_dir = parts
    fake_hub_cache(monkeypatch, tmp_path / "hub", {"google/flan-t5-xl": te_dir, "stabilityai/sdxl-vae": vae_dir})
    net, pre = official_network()
    d, uncond = save_release(tmp_path / "miro", net, pre)
    return d, net, pre, uncond


def _inputs(b=3, length=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, length, WIDTH, generator=g)
    mask = torch.arange(length)[None] < torch.tensor([length, 4, 6])[:b, None]  # not all true
    rewards = torch.rand(b, len(KEYS), generator=g)
    return emb, mask, rewards, g


def _official_batch(x, gamma, emb, mask, rewards, prev):
    batch = {"y": x.clone(), "gamma": gamma, "text_tokens_embeddings": emb, "text_tokens_mask": mask}
    batch["previous_latents"] = prev
    batch.update({f"{k}_coherence": rewards[:, i] for i, k in enumerate(KEYS)})
    return batch


@torch.no_grad()
@pytest.mark.parametrize("with_prev", [False, True])
def test_network_velocity_and_latents_match(release, with_prev):
    d, net, pre, _ = release
    pipe = RewardFlowPipeline.from_pretrained(d)
    emb, mask, rewards, g = _inputs()
    x = torch.randn(3, 4, 8, 8, generator=g)
    gamma = torch.tensor([0.07, 0.5, 0.93])
    prev = torch.randn(3, 12, 32, generator=g) if with_prev else None
    v_ref, z_ref = pre(net, _official_batch(x, gamma, emb, mask, rewards, prev))
    v, z = pipe.model.run(x, 1 - gamma, emb, mask, rewards, prev_latents=prev)
    assert (v - v_ref).abs().max() < 1e-5
    assert (z - z_ref).abs().max() < 1e-5
    assert v_ref.abs().mean() > 0.1  # a live network, not a zero one


@torch.no_grad()
def test_ten_step_guided_euler_sample_matches(release):
    from miro.models.scheduler import LinearScheduler
    from miro.pipeline import MiroPipeline

    d, net, pre, uncond = release
    emb, mask, rewards, _ = _inputs()
    targets = {k: float(v) for k, v in zip(KEYS, rewards[0])}
    negative = {KEYS[1]: 0.25, KEYS[4]: 0.5}
    post, fixed = KeepLatents(), FixedText(emb, mask)
    ref = MiroPipeline(net, pre, torch.nn.Identity(), post, LinearScheduler(), uncond, {"data_resolution": 8})
    ref.text_encoder, ref.tokenizer = fixed, fixed
    ref(["a", "b", "c"], reward_targets=targets, negative_reward_targets=negative, num_inference_steps=10,
        guidance_scale=7.0, generator=torch.Generator().manual_seed(5), output_type="numpy")  # fmt: skip
    pipe = RewardFlowPipeline.from_pretrained(d)
    ours = pipe(
        prompt_embeds=emb,
        prompt_attention_mask=mask,
        reward_targets=targets,
        negative_reward_targets=negative,
        num_inference_steps=10,
        guidance_scale=7.0,
        generator=torch.Generator().manual_seed(5),
        output_type="latent",
        progress=False,
    ).images
    assert (ours - post.latents).abs().max() < 1e-4
    assert post.latents.std() > 0.1


@torch.no_grad()
def test_a_dropped_reward_is_the_released_models_missing_key(release):
    """reward_drop on a key == the authors' network evaluated without that key in the batch."""
    d, net, pre, _ = release
    pipe = RewardFlowPipeline.from_pretrained(d)
    emb, mask, rewards, g = _inputs()
    x, gamma = torch.randn(3, 4, 8, 8, generator=g), torch.tensor([0.2, 0.6, 0.9])
    batch = _official_batch(x, gamma, emb, mask, rewards, None)
    del batch["vqa_score_coherence"]
    v_ref, _ = pre(net, batch)
    drop = torch.zeros(3, len(KEYS), dtype=torch.bool)
    drop[:, KEYS.index("vqa_score")] = True
    v, _ = pipe.model.run(x, 1 - gamma, emb, mask, rewards, drop)
    assert (v - v_ref).abs().max() < 1e-5
    assert (v - pipe.model.run(x, 1 - gamma, emb, mask, rewards)[0]).abs().max() > 1e-3


def test_shift_and_latent_normalisation_conventions():
    from miro.models.postprocessing import VAEPostProcessing
    from miro.models.scheduler import LinearScheduler

    from rewardflow.models.miro_official import latent_stats, sampler_defaults
    from rewardflow.sampling.solvers import time_grid

    steps = torch.arange(11, dtype=torch.float32)
    for s in (0.5, 1.0, 3.0):  # the released shift acts on gamma only above 1, and is our 1 / s
        gammas = LinearScheduler(shift=s)(1 - steps / 10)
        ours = sampler_defaults({"scheduler": {"shift": s}})["shift"]
        assert ours == (1 / s if s > 1 else 1.0)
        torch.testing.assert_close(1 - time_grid(10, ours), gammas.clamp_min(0).where(steps > 0, 0), atol=1e-6, rtol=0)
    post = VAEPostProcessing(channel_wise_normalisation=True)
    sd = {f"postprocessing.{k}": v for k, v in post.state_dict().items()}
    stats = latent_stats(sd)
    x = torch.randn(2, 4, 3, 3)
    z = x * torch.tensor(stats["std"]).view(1, 4, 1, 1) + torch.tensor(stats["mean"]).view(1, 4, 1, 1)
    torch.testing.assert_close(z, post(x), atol=1e-5, rtol=1e-5)


def test_autocast_setting_applies_on_cuda_only(release):
    from rewardflow.sampling.precision import network_autocast

    d = release[0]
    pipe = RewardFlowPipeline.from_pretrained(d)
    assert pipe.config["autocast"] == "bfloat16"  # the authors' sampler on CUDA
    ctx = network_autocast(torch.device("cuda"), "bfloat16")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16 and ctx.device == "cuda"
    assert not isinstance(network_autocast(torch.device("cpu"), "bfloat16"), torch.autocast)
    with pytest.raises(ValueError, match="autocast"):
        network_autocast(torch.device("cuda"), "int8")
