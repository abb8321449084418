"""Bit-exact resume: N steps straight == N/2, SIGKILL, resume, N/2 (weights, EMA, optimizer).

The interrupted half runs in a subprocess (this file, run as a script) that is killed with
SIGKILL once its step-N/2 checkpoint exists; the resume runs the same config in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from rewardflow.training import TrainConfig, Trainer, latest_checkpoint
from rewardflow.training.callbacks import FunctionCallback
from rewardflow.training.synthetic import SyntheticData

N = 6


def config(out_dir, *extra) -> TrainConfig:
    return TrainConfig.load(
        None,
        [
            f"out_dir={out_dir}",
            "data.batch_size=4",
            f"max_steps={N}",
            f"checkpoint.every={N // 2}",
            "checkpoint.keep_last=5",
            "progress=false",
            "tensorboard=false",
            "log_every=1",
            "optim.lr=3e-3",
            "optim.warmup_steps=2",
            "ema.decay=0.8",
            "text_dropout=0.3",
            "reward_dropout=0.2",
            "data.reward_keys=[a,b]",
            "time.kind=logit_normal",
            *extra,
        ],
    )


def trainer(out_dir, *extra, **kw) -> Trainer:
    return Trainer(config(out_dir, *extra), data=lambda ctx: SyntheticData(ctx), **kw)


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for name, ma, mb in (("live", a.raw_model, b.raw_model), ("ema", a.ema.module, b.ema.module)):
        sa, sb = ma.state_dict(), mb.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name} weights differ at {k}"
    oa, ob = a._optimizer.state_dict(), b._optimizer.state_dict()
    assert oa["param_groups"] == ob["param_groups"]
    for i in oa["state"]:
        for k, v in oa["state"][i].items():
            assert torch.equal(v, ob["state"][i][k]), f"optimizer state {i}.{k} differs"
    assert (a.step, a.images_seen, a.ema.num_updates) == (b.step, b.images_seen, b.ema.num_updates)
    assert a.scheduler.state_dict() == b.scheduler.state_dict()
    assert a.data.state_dict() == b.data.state_dict()


def _worker(out_dir: str, preset: str) -> None:
    torch.set_num_threads(int(os.environ["RF_TEST_THREADS"]))
    # Hang after the mid-run checkpoint so the parent's SIGKILL lands in the middle of the run.
    hang = FunctionCallback(lambda tr, step: time.sleep(600) if step == N // 2 else None, every=1)
    trainer(out_dir, f"model.preset={preset}", callbacks=[hang]).train()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("preset", ["dit-tiny", "rin-tiny"])  # rin: self-conditioning draws from the step RNG too
def test_kill_and_resume_is_bit_exact(tmp_path, preset):
    straight = trainer(tmp_path / "straight", f"model.preset={preset}")
    straight.train()

    run = tmp_path / "killed"
    env = dict(os.environ, RF_TEST_THREADS=str(torch.get_num_threads()))
    proc = subprocess.Popen(
        [sys.executable, __file__, str(run), preset], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        mid = run / "checkpoints" / f"step_{N // 2:07d}" / "trainer_state.json"
        deadline = time.time() + 90
        while not mid.exists():
            assert proc.poll() is None, f"worker died: {proc.stderr.read().decode()[-2000:]}"
            assert time.time() < deadline, "worker never wrote its mid-run checkpoint"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert latest_checkpoint(run).name == f"step_{N // 2:07d}"

    resumed = trainer(run, f"model.preset={preset}")
    resumed.train()
    assert resumed.resumed_from.endswith(f"step_{N // 2:07d}")
    assert_same_state(straight, resumed)


def test_resume_with_changed_config_says_what_differs(tmp_path):
    trainer(tmp_path, "max_steps=2", "checkpoint.every=0").train()
    with pytest.raises(ValueError, match=r"optim.lr: checkpoint has 0.003, now 0.01") as err:
        trainer(tmp_path, "max_steps=2", "optim.lr=1e-2").train()
    assert "--allow-change optim.lr" in str(err.value)
    # max_steps is part of the schedule, so it needs the explicit flag too; then training goes on.
    more = trainer(tmp_path, "max_steps=3", allow_changes=["max_steps"])
    assert more.train()["step"] == 3 and more.resumed_from is not None


def test_finished_run_started_again_does_nothing(tmp_path):
    trainer(tmp_path, "max_steps=2").train()
    again = trainer(tmp_path, "max_steps=2")
    before = {k: v.clone() for k, v in again.raw_model.state_dict().items()}
    out = again.train()
    assert out["step"] == 2 and out["resumed_from"]
    assert any(not torch.equal(before[k], v) for k, v in again.raw_model.state_dict().items())


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
