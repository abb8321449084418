"""Two CPU processes (gloo, launched by torchrun) match one process on the same global batch.

Run as a script under torchrun, this file is the worker: it trains on SyntheticData (global
batch drawn whole, rank r keeps rows r, r + 2, ...) and records which ranks wrote checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rewardflow.training import TrainConfig, Trainer, read_jsonl
from rewardflow.training.synthetic import SyntheticData

STEPS = 3


def config(out_dir) -> TrainConfig:
    return TrainConfig.load(
        None,
        [
            f"out_dir={out_dir}",
            "data.batch_size=8",
            f"max_steps={STEPS}",
            "checkpoint.every=2",
            "progress=false",
            "tensorboard=false",
            "log_every=1",
            "optim.lr=3e-3",
            "optim.warmup_steps=1",
            "text_dropout=0.3",
            "reward_dropout=0.2",
            "data.reward_keys=[a,b]",
            "ema.decay=0.5",
        ],
    )


def _worker(out_dir: str) -> None:
    from rewardflow.training import checkpoint as ckpt

    writers = Path(out_dir) / "writers"
    real = ckpt.save_checkpoint

    def spy(*args, **kwargs):
        with open(writers, "a") as fh:
            fh.write(f"{os.environ['RANK']}\n")
        return real(*args, **kwargs)

    ckpt.save_checkpoint = spy
    tr = Trainer(config(out_dir), data=lambda ctx: SyntheticData(ctx))
    assert (tr.world_size, tr.per_device_batch) == (2, 4), (tr.world_size, tr.per_device_batch)
    tr.train()


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_two_gloo_processes_match_one(tmp_path):
    out2 = tmp_path / "two"
    out2.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, str(out2)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert res.returncode == 0, res.stderr[-3000:]

    one = Trainer(config(tmp_path / "one"), data=lambda ctx: SyntheticData(ctx))
    assert one.world_size == 1 and one.per_device_batch == 8
    one.train()

    # Each checkpoint (steps 2 and 3) written once, by rank 0, and complete.
    assert (out2 / "writers").read_text().split() == ["0", "0"]
    names = sorted(p.name for p in (out2 / "checkpoints").iterdir())
    assert names == ["step_0000002", "step_0000003"]
    state = json.loads((out2 / "checkpoints" / "step_0000003" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["images_seen"] == 8 * STEPS
    assert [d["position"] for d in state["data"]] == [STEPS, STEPS]

    two_live = load_file(str(out2 / "checkpoints" / "step_0000003" / "live.safetensors"))
    two_ema = load_file(str(out2 / "checkpoints" / "step_0000003" / "model" / "model.safetensors"))
    for name, ref, got in (
        ("live", one.raw_model.state_dict(), two_live),
        ("ema", one.ema.module.state_dict(), two_ema),
    ):
        assert ref.keys() == got.keys()
        for k in ref:
            torch.testing.assert_close(
                got[k], ref[k], rtol=1e-4, atol=1e-5, msg=lambda m, name=name, k=k: f"{name} {k}: {m}"
            )
    losses1 = [r["loss"] for r in read_jsonl(tmp_path / "one" / "log.jsonl", "train")]
    losses2 = [r["loss"] for r in read_jsonl(out2 / "log.jsonl", "train")]
    assert losses1 == pytest.approx(losses2, rel=1e-4)


if __name__ == "__main__":
    _worker(sys.argv[1])
