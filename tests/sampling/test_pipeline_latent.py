import pytest
import torch

from rewardflow.sampling.pipeline import RewardFlowPipeline


@pytest.fixture
def latent_pipe(tiny_text_encoder):
    from release_helpers import tiny_vae

    from rewardflow.models import build_model, model_config_from_preset

    torch.manual_seed(0)
    vae = tiny_vae().eval()
    model = build_model(
        model_config_from_preset("dit-tiny", in_channels=4, image_size=8, text_dim=16, reward_keys=("a", "b"))
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    stats = {"mean": [0.1, -0.2, 0.0, 0.3], "std": [2.0, 1.0, 0.5, 1.5], "vae": ""}
    return RewardFlowPipeline(
        model, tiny_text_encoder, vae=vae, config={"latent_stats": stats, "num_inference_steps": 2}
    )


def test_latent_model_decodes_through_vae_with_training_stats(latent_pipe, tmp_path):
    lat = latent_pipe("a", seed=3, output_type="latent", progress=False).images
    assert lat.shape == (1, 4, 8, 8)
    img = latent_pipe("a", seed=3, output_type="pt", progress=False).images
    assert img.shape == (1, 3, 16, 16)
    s = latent_pipe.config["latent_stats"]
    z = lat * torch.tensor(s["std"]).view(1, -1, 1, 1) + torch.tensor(s["mean"]).view(1, -1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(img, latent_pipe.vae.decode(z).sample.clamp(-1, 1))
    d = latent_pipe.save_pretrained(tmp_path / "p")
    assert (d / "vae" / "config.json").is_file()
    loaded = RewardFlowPipeline.from_pretrained(d)
    assert loaded.config["latent_stats"] == s
    assert torch.equal(loaded("a", seed=3, output_type="pt", progress=False).images, img)
    latent_pipe.vae = None
    with pytest.raises(ValueError, match="no VAE"):
        latent_pipe("a", output_type="pil")
