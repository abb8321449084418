"""EMA: fp32, moves, differs from the live weights, and is what from_pretrained loads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rewardflow.models import load_model
from rewardflow.training import EMA, TrainConfig, Trainer, latest_checkpoint
from rewardflow.training.synthetic import SyntheticData


def test_ema_update_rule_and_warmup():
    lin = nn.Linear(2, 2)
    ema = EMA(lin, decay=0.9, warmup=True)
    start = ema.module.weight.clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    d = ema.current_decay()
    assert d == pytest.approx(0.1)  # (1 + 0) / (10 + 0): the early average follows the weights
    ema.update(lin)
    torch.testing.assert_close(ema.module.weight, d * start + (1 - d) * lin.weight.detach())
    assert EMA(lin, decay=0.9, warmup=False).current_decay() == 0.9
    with pytest.raises(ValueError):
        EMA(lin, decay=1.0)


def test_ema_is_fp32_copy_of_a_bf16_model():
    lin = nn.Linear(4, 4).to(torch.bfloat16)
    ema = EMA(lin, decay=0.5)
    assert ema.module.weight.dtype == torch.float32 and not ema.module.weight.requires_grad
    ema.update(lin)
    assert ema.module.weight.dtype == torch.float32


def test_trained_ema_moves_differs_from_live_and_is_what_from_pretrained_loads(tmp_path):
    cfg = TrainConfig.load(
        None,
        [
            f"out_dir={tmp_path}",
            "data.batch_size=4",
            "max_steps=5",
            "progress=false",
            "tensorboard=false",
            "optim.lr=1e-2",
            "optim.warmup_steps=0",
            "ema.decay=0.9",
            "data.reward_keys=[a]",
            "data.mode=single",
        ],
    )
    tr = Trainer(cfg, data=lambda ctx: SyntheticData(ctx))
    init = {k: v.clone() for k, v in tr.raw_model.state_dict().items()}
    tr.train()
    live, ema = tr.raw_model.state_dict(), tr.ema.module.state_dict()
    changed = [k for k in init if not torch.equal(init[k], ema[k])]
    assert changed, "EMA never moved"
    assert any(not torch.equal(live[k], ema[k]) for k in changed), "EMA equals the live weights"
    loaded = load_model(latest_checkpoint(tmp_path) / "model")
    assert type(loaded) is type(tr.raw_model) and loaded.config.reward_keys == ("a",)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ema[k].cpu()), k
