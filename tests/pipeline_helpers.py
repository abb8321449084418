"""Dummy components for the pipeline / selection / target-search tests (as diffusers tests its
pipelines): tiny randomly initialised denoisers from the real presets, with their adaLN-zero
weights perturbed so outputs depend on every input, and bins fitted on random scores. The
fixtures built from them (a tiny BERT text encoder loaded through the real TextEncoder, the
pipelines) live in conftest.py."""

from __future__ import annotations

import torch

REWARD_KEYS = ("sharpness", "colorfulness")  # real registered rewards, so selection can score them


def tiny_model(preset: str = "dit-tiny", reward_keys=REWARD_KEYS, seed: int = 0, **overrides):
    from rewardflow.models import build_model, model_config_from_preset

    torch.manual_seed(seed)
    model = build_model(model_config_from_preset(preset, reward_keys=tuple(reward_keys), text_dim=16, **overrides))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def tiny_bins(keys=REWARD_KEYS):
    import numpy as np

    from rewardflow.data.binning import RewardBins

    rng = np.random.default_rng(0)
    return RewardBins.fit({k: rng.normal(size=500) for k in keys}, num_bins=8)
