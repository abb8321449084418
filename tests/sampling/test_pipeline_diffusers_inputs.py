"""diffusers' calling conventions: start noise (latents=, generator= as one randn) and
precomputed text embeddings give exactly the images of the equivalent prompts and seeds."""

import pytest
import torch

from rewardflow.sampling.noise import randn_per_seed


def _pt(pipe, prompts=None, **kw):
    return pipe(prompts, output_type="pt", progress=False, num_inference_steps=2, **kw)


def _shape(pipe):
    c = pipe.model.config
    return (c.in_channels, c.image_size, c.image_size)


def test_latents_are_the_start_noise(pipe):
    ref = _pt(pipe, ["a red circle", "two blue squares"], seed=5)
    noise = randn_per_seed([5, 6], _shape(pipe), device="cpu", dtype=torch.float32)
    out = _pt(pipe, ["a red circle", "two blue squares"], latents=noise)
    assert torch.equal(out.images, ref.images) and out.seeds == []
    with pytest.raises(ValueError, match=r"latents must be a \(2, "):
        _pt(pipe, ["a", "b"], latents=noise[:1])


def test_generator_draws_the_request_noise_as_one_randn(pipe):
    out = _pt(pipe, ["a red circle", "two blue squares"], generator=torch.Generator().manual_seed(3))
    noise = torch.randn((2, *_shape(pipe)), generator=torch.Generator().manual_seed(3))
    assert torch.equal(out.images, _pt(pipe, ["a red circle", "two blue squares"], latents=noise).images)
    # With a seed the generator is not used: per-image seeds as always.
    seeded = _pt(pipe, ["a red circle"], seed=4, generator=torch.Generator().manual_seed(3))
    assert seeded.seeds == [4] and torch.equal(seeded.images, _pt(pipe, ["a red circle"], seed=4).images)


def test_prompt_embeds_skip_the_text_encoder(pipe):
    prompts = ["a red circle", "two blue squares"]
    text, mask = pipe.text_encoder.encode(prompts)
    ref = _pt(pipe, prompts, seed=1, num_images_per_prompt=2)
    out = _pt(pipe, prompt_embeds=text, prompt_attention_mask=mask, seed=1, num_images_per_prompt=2)
    assert torch.equal(out.images, ref.images)
    neg_text, neg_mask = pipe.text_encoder.encode(["blurry"])
    ref = _pt(pipe, prompts, seed=1, negative_prompt="blurry", guidance_scale=3.0)
    out = _pt(
        pipe,
        prompts,
        seed=1,
        negative_prompt_embeds=neg_text,
        negative_prompt_attention_mask=neg_mask,
        guidance_scale=3.0,
    )
    assert torch.equal(out.images, ref.images)
    with pytest.raises(ValueError, match="prompt or prompt_embeds"):
        _pt(pipe, prompts, prompt_embeds=text)
    with pytest.raises(ValueError, match="prompt_attention_mask must be"):
        _pt(pipe, prompt_embeds=text, prompt_attention_mask=mask[:, :2])


def test_latent_output_is_the_sampler_output(pipe):
    out = _pt(pipe, ["a red circle"], seed=2)
    lat = pipe(["a red circle"], seed=2, num_inference_steps=2, output_type="latent", progress=False)
    assert torch.equal(lat.images.clamp(-1, 1), out.images)  # a pixel model: decoding is the identity


def test_top_level_exports_load_lazily():
    """`from rewardflow import RewardFlowPipeline`, as diffusers exports its pipelines; a bare
    `import rewardflow` still loads no torch."""
    import subprocess
    import sys

    import rewardflow
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    assert rewardflow.RewardFlowPipeline is RewardFlowPipeline
    code = "import sys, rewardflow; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        rewardflow.Nope  # noqa: B018
