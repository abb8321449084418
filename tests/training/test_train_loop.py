"""Trainer behaviour on tiny models and synthetic batches: NaN guard, modes, accumulation, bf16."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rewardflow.training import TrainConfig, Trainer, lr_factor, read_jsonl
from rewardflow.training.synthetic import SyntheticData

BASE = [
    "data.batch_size=4",
    "max_steps=4",
    "checkpoint.every=0",
    "log_every=1",
    "progress=false",
    "tensorboard=false",
    "optim.warmup_steps=1",
    "optim.lr=1e-3",
    "data.reward_keys=[a,b]",
]


def make(tmp_path, *extra, **kw) -> Trainer:
    cfg = TrainConfig.load(None, BASE + [f"out_dir={tmp_path}"] + list(extra))
    return Trainer(cfg, data=lambda ctx: SyntheticData(ctx), **kw)


def params(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_nan_loss_is_skipped_counted_and_training_continues(tmp_path):
    tr = make(tmp_path, "max_steps=5")
    real = tr.compute_loss
    seen = {}

    def poisoned(batch, gen):
        loss = real(batch, gen)
        if tr.step == 2:  # inject a NaN into the loss of step index 2 only
            seen["before"] = (params(tr.raw_model), params(tr.ema.module), tr._optimizer.state_dict())
            return loss * float("nan")
        if tr.step == 3 and "after" not in seen:
            seen["after"] = (params(tr.raw_model), params(tr.ema.module))
        return loss

    tr.compute_loss = poisoned
    out = tr.train()
    assert out["skipped_steps"] == 1 and out["step"] == 5
    live0, ema0, opt0 = seen["before"]
    live1, ema1 = seen["after"]
    assert all(torch.equal(live0[k], live1[k]) for k in live0), "a skipped step changed the weights"
    assert all(torch.equal(ema0[k], ema1[k]) for k in ema0), "a skipped step changed the EMA"
    steps = {float(s["step"]) for s in tr._optimizer.state_dict()["state"].values()}
    assert steps == {4.0}  # 5 steps, one skipped: AdamW stepped 4 times
    assert all(torch.isfinite(p).all() for p in tr.raw_model.parameters())
    recs = read_jsonl(tmp_path / "log.jsonl", "train")
    assert [r["skipped_steps"] for r in recs] == [0, 0, 1, 1, 1]
    assert recs[2]["loss"] == "nan" and math.isfinite(recs[3]["loss"])
    assert any("non-finite" in r["message"] for r in read_jsonl(tmp_path / "log.jsonl", "event"))


def test_baseline_mode_has_no_reward_conditioning(tmp_path):
    tr = make(tmp_path, "data.mode=baseline", "data.reward_keys=[]", "max_steps=2")
    assert tr.raw_model.config.num_rewards == 0 and tr.reward_keys == []
    assert tr.train()["step"] == 2


def test_single_mode_needs_one_key():
    with pytest.raises(ValueError, match="exactly one"):
        TrainConfig.load(None, ["data.mode=single", "data.reward_keys=[a,b]"])


def test_lamb_with_accumulation_and_unet(tmp_path):
    tr = make(
        tmp_path,
        "optim.optimizer=lamb",
        "optim.grad_accumulation=2",
        "model.preset=unet-tiny",
        "max_steps=2",
        "optim.weight_decay=0.01",
    )
    assert tr.per_device_batch == 2
    before = params(tr.raw_model)
    tr.train()
    after = params(tr.raw_model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert tr.images_seen == 8


def test_bf16_autocast_keeps_fp32_weights_and_ema(tmp_path):
    tr = make(tmp_path, "precision=bf16", "max_steps=3", "ema.decay=0.5")
    tr.train()
    assert all(p.dtype == torch.float32 for p in tr.raw_model.parameters())
    assert all(p.dtype == torch.float32 for p in tr.ema.module.parameters())
    rec = read_jsonl(tmp_path / "log.jsonl", "train")[-1]
    assert math.isfinite(rec["loss"]) and rec["skipped_steps"] == 0


def test_warmup_then_cosine_to_floor():
    cfg = TrainConfig.load(None, ["optim.warmup_steps=10", "optim.min_lr_ratio=0.1", "max_steps=110"]).optim
    assert lr_factor(0, cfg, 110) == pytest.approx(0.1) and lr_factor(9, cfg, 110) == pytest.approx(1.0)
    assert lr_factor(60, cfg, 110) == pytest.approx(0.55)
    assert lr_factor(110, cfg, 110) == pytest.approx(0.1)


def test_keep_last_k_and_stale_temp_dirs(tmp_path):
    stale = tmp_path / "checkpoints" / ".tmp-step_0000009-123"
    stale.mkdir(parents=True)
    tr = make(tmp_path, "checkpoint.every=1", "checkpoint.keep_last=2", "max_steps=4")
    tr.train()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_0000003", "step_0000004"]
    saved = json.loads((tmp_path / "checkpoints" / "step_0000004" / "train_config.json").read_text())
    assert saved == tr.config.to_dict()


@pytest.mark.parametrize("mode", ["keep", "zero", "null_token"])
def test_text_dropout_rewards_modes(tmp_path, mode):
    tr = make(tmp_path, "text_dropout=0.5", f"text_dropout_rewards={mode}", "data.batch_size=32")
    seen = {}
    real_forward = tr.raw_model.forward

    def spy(x_t, t, text, text_mask, rewards=None, reward_drop=None):
        seen.update(text=text.clone(), rewards=rewards.clone(), drop=reward_drop.clone())
        return real_forward(x_t, t, text, text_mask, rewards, reward_drop)

    tr.raw_model.forward = spy
    batch = next(iter(tr.data))
    tr.compute_loss(batch, torch.Generator().manual_seed(0))
    # The rows whose caption was swapped for the null text.
    dropped = (seen["text"] != batch["text"].float()).flatten(1).any(dim=1)
    true = batch["rewards"].float()
    if mode == "keep":
        assert torch.equal(seen["rewards"], true) and not seen["drop"].any()
    elif mode == "zero":
        rows = (seen["rewards"] != true).any(dim=1)
        assert rows.any() and (~rows).any() and torch.all(seen["rewards"][rows] == 0)
        assert not seen["drop"].any()
    else:
        rows = seen["drop"].all(dim=1)
        assert rows.any() and (~rows).any() and torch.equal(seen["rewards"], true)
    if mode != "keep":
        assert torch.equal(rows, dropped)


def test_text_dropout_rewards_validated_and_legacy_resume():
    from rewardflow.training.config import check_resume_config

    with pytest.raises(ValueError, match="text_dropout_rewards must be one of"):
        TrainConfig.load(None, ["text_dropout_rewards=nan"])
    saved = TrainConfig().to_dict()
    del saved["text_dropout_rewards"]  # a checkpoint written before the option existed
    check_resume_config(saved, TrainConfig.load(None, ["text_dropout_rewards=keep"]).to_dict())
    with pytest.raises(ValueError, match="text_dropout_rewards"):  # the default changed since: refuse
        check_resume_config(saved, TrainConfig().to_dict())
