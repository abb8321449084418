import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rewardflow.cli import main as cli_main
from rewardflow.data.binning import RewardBins
from rewardflow.data.shards import ShardWriter
from rewardflow.rewards.scoring import read_scores, score_dataset
from rewardflow.shapes import ShapesConfig, encode_png, generate_sample

SLOW_PLUGIN = '''
import time
import torch
from rewardflow.rewards import Reward, register_reward

@register_reward("slow_test")
class Slow(Reward):
    """Mean intensity, slowly: makes a scoring run last long enough to be killed midway."""
    needs_caption = False
    batch_size = 8

    def _score(self, images, captions):
        time.sleep(0.03)
        return torch.from_numpy(images.reshape(len(images), -1).mean(1).astype("float32"))
'''


def _write_dataset(d: Path, shards: int, per_shard: int, corrupt: dict | None = None) -> None:
    cfg = ShapesConfig()
    corrupt = corrupt or {}
    with ShardWriter(d, maxcount=per_shard) as w:
        for i in range(shards * per_shard):
            s = generate_sample(cfg, i)
            png = corrupt.get(i, encode_png(s.image))
            w.write(f"{i:06d}", {"png": png, "txt": s.caption, "json": json.dumps(s.meta)})


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory):
    d = tmp_path_factory.mktemp("ds")
    _write_dataset(
        d,
        shards=2,
        per_shard=12,
        corrupt={3: b"\x89PNG\r\n\x1a\nbroken", 15: encode_png(np.zeros((8, 8, 3), np.uint8))[:40]},
    )
    return d


def test_score_corrupt_png_skipped_and_resume_adds_columns(small_ds, tmp_path):
    d = tmp_path / "ds"
    shutil.copytree(small_ds, d)
    rep = score_dataset(d, ["sharpness"], progress=False)
    assert rep.shards_scored == 2 and rep.samples_scored == 22 and rep.num_skipped == 2
    skipped = json.loads((d / "_skipped.json").read_text())
    assert [e["key"] for e in skipped["00000.tar"]] == ["000003"] and "corrupt png" in skipped["00000.tar"][0]["reason"]
    assert [e["key"] for e in skipped["00001.tar"]] == ["000015"]
    t0 = pq.read_table(d / "00000.parquet")
    assert t0.column_names == ["key", "sharpness"] and "000003" not in t0.column("key").to_pylist()
    assert t0.num_rows == 11 and str(t0.schema.field("sharpness").type) == "float"
    # Same request again: nothing to do.
    mtime = (d / "00000.parquet").stat().st_mtime_ns
    rep = score_dataset(d, ["sharpness"], progress=False)
    assert rep.shards_up_to_date == 2 and rep.shards_scored == 0
    assert (d / "00000.parquet").stat().st_mtime_ns == mtime
    # A new reward is added as a column; the old column is kept bit for bit.
    score_dataset(d, ["sharpness", "colorfulness"], progress=False)
    t1 = pq.read_table(d / "00000.parquet")
    assert t1.column_names == ["key", "sharpness", "colorfulness"]
    assert t1.column("sharpness").equals(t0.column("sharpness"))
    # The per-batch result does not depend on the batch size.
    d2 = tmp_path / "ds2"
    shutil.copytree(small_ds, d2)
    score_dataset(d2, ["sharpness", "colorfulness"], batch_size=5, progress=False)
    assert pq.read_table(d2 / "00000.parquet").equals(t1)
    scores = read_scores(d)
    assert set(scores) == {"sharpness", "colorfulness"} and len(scores["sharpness"]) == 22


def test_cli_score_and_bins_fit(small_ds, tmp_path, capsys):
    d = tmp_path / "ds"
    shutil.copytree(small_ds, d)
    # 2 bad of 24 is over the default 1 % limit (tests/test_faults.py): accept it here.
    assert cli_main(["score", "--data", str(d), "--no-progress", "--max-bad-fraction", "0.1"]) == 0
    out = capsys.readouterr()
    assert "2 corrupt/unreadable samples skipped" in out.out and "_skipped.json" in out.err
    cols = pq.read_table(d / "00001.parquet").column_names
    assert cols == ["key", "shapes_alignment", "sharpness", "cleanliness", "colorfulness"]
    assert cli_main(["bins", "fit", "--data", str(d), "--num-bins", "8"]) == 0
    bins = RewardBins.load(d / "bins.json")
    assert bins.keys == cols[1:] and bins.num_bins == 8
    assert cli_main(["score", "--data", str(d), "--rewards", "nope"]) == 1
    assert "unknown reward 'nope'" in capsys.readouterr().err
    assert cli_main(["bins", "fit", "--data", str(tmp_path / "missing")]) == 1


def _run_cli(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "rewardflow.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _slow_env(tmp_path) -> dict:
    """Environment of a child process that has the slow test reward registered."""
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "slow_plugin.py").write_text(SLOW_PLUGIN)
    return dict(
        os.environ,
        PYTHONPATH=f"{tmp_path / 'plug'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        REWARDFLOW_REWARD_MODULES="slow_plugin",
        OMP_NUM_THREADS="1",
    )


def test_sigkill_midway_then_resume_equals_uninterrupted(tmp_path):
    env = _slow_env(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    _write_dataset(a, shards=5, per_shard=24)
    shutil.copytree(a, b)
    args = ["score", "--rewards", "slow_test,cleanliness", "--no-progress", "--data"]

    proc = _run_cli(args + [str(a)], env)
    reference = _run_cli(args + [str(b)], env)  # the uninterrupted run, alongside
    deadline = time.time() + 120
    while not list(a.glob("*.parquet")):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(a.glob("*.parquet")))
    assert 1 <= done < 5, "the run must be killed midway"
    assert _run_cli(args + [str(a)], env).wait() == 0
    assert reference.wait() == 0
    for i in range(5):
        ta, tb = pq.read_table(a / f"{i:05d}.parquet"), pq.read_table(b / f"{i:05d}.parquet")
        assert ta.num_rows == 24 and ta.equals(tb)
        assert len(set(ta.column("key").to_pylist())) == 24


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_two_ranks_score_what_one_process_scores(tmp_path):
    """torchrun with 2 processes: the shards are split over the ranks, the Parquets and the skip
    list equal a one-process run's, and rank 0 alone prints the job's summary."""
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        _write_dataset(d, shards=3, per_shard=6, corrupt={2: b"not a png", 14: b"nor this"})
    rewards = "sharpness,cleanliness"
    single = score_dataset(one, rewards.split(","), progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "rewardflow.cli", "score", "--data", str(two), "--rewards", rewards, "--no-progress"]
    cmd += ["--max-bad-fraction", "0.5"]  # the two corrupt images are on purpose
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert res.returncode == 0, res.stderr[-3000:]
    for shard in sorted(one.glob("*.parquet")):
        assert pq.read_table(shard).equals(pq.read_table(two / shard.name)), shard.name

    def skipped(d):
        return {
            shard: [e["key"] for e in entries]
            for shard, entries in json.loads((d / "_skipped.json").read_text()).items()
        }

    assert skipped(two) == skipped(one) == {"00000.tar": ["000002"], "00002.tar": ["000014"]}
    assert json.loads((two / "_skipped.json").read_text()) == json.loads((one / "_skipped.json").read_text())
    assert not list(two.glob("_skipped.rank-*.json"))
    assert res.stdout.count("3 shards: 3 scored") == 1 and "2 processes" in res.stdout
    mean = single.rewards["sharpness"]["mean"]
    assert f"sharpness: mean {mean:.4f}" in res.stdout


def test_rank_skip_files_of_a_killed_job_are_merged(tmp_path):
    """A rank's file says what its shards hold now: an empty list drops an old entry."""
    from rewardflow.rewards.score_ranks import merge_skip_files, rank_skip_file

    (tmp_path / "_skipped.json").write_text(json.dumps({"a.tar": [{"key": "1"}], "c.tar": [{"key": "9"}]}))
    rank_skip_file(tmp_path, 0).write_text(json.dumps({"a.tar": []}))
    rank_skip_file(tmp_path, 1).write_text(json.dumps({"b.tar": [{"key": "2"}]}))
    merged = merge_skip_files(tmp_path, "_skipped.json")
    assert merged == {"b.tar": [{"key": "2"}], "c.tar": [{"key": "9"}]}
    assert json.loads((tmp_path / "_skipped.json").read_text()) == merged
    assert not list(tmp_path.glob("_skipped.rank-*.json"))


@pytest.mark.distributed
@pytest.mark.timeout(240)
def test_killed_two_rank_run_resumes_without_loss_or_duplicates(tmp_path):
    """torchrun with 2 processes, SIGKILLed (launcher and workers) once the first shards are
    written, then run again: every shard equals a one-process run's, each key once."""
    env = _slow_env(tmp_path)
    run, ref = tmp_path / "run", tmp_path / "ref"
    _write_dataset(run, shards=6, per_shard=16, corrupt={5: b"broken"})
    shutil.copytree(run, ref)
    rewards = ["slow_test", "cleanliness"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    cmd += ["rewardflow.cli", "score", "--data", str(run), "--rewards", ",".join(rewards), "--no-progress"]
    cmd += ["--max-bad-fraction", "0.5"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 150
    while not list(run.glob("*.parquet")):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers at once
    proc.wait()
    assert 1 <= len(list(run.glob("*.parquet"))) < 6, "the run must be killed midway"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert again.returncode == 0, again.stderr[-3000:]
    reference = subprocess.run(
        [sys.executable, "-m", "rewardflow.cli", "score", "--data", str(ref), "--rewards", ",".join(rewards)]
        + ["--no-progress", "--max-bad-fraction", "0.5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    for shard in sorted(ref.glob("*.parquet")):
        t = pq.read_table(run / shard.name)
        assert t.equals(pq.read_table(shard)), shard.name
        assert len(set(t.column("key").to_pylist())) == t.num_rows
    assert json.loads((run / "_skipped.json").read_text()) == json.loads((ref / "_skipped.json").read_text())
    assert not list(run.glob("_skipped.rank-*.json"))
