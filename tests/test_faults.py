"""Faults at scale: two jobs in one folder, killed jobs, damaged checkpoints, shared-storage
permissions, full or read-only disks, byte-identical outputs. Each test asserts that nothing
finished is lost, nothing half-written looks valid, and the message names the path."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from rewardflow.cli import main as cli_main
from rewardflow.data.shards import ShardWriter
from rewardflow.shapes import ShapesConfig, encode_png, generate_sample
from rewardflow.training import TrainConfig, Trainer
from rewardflow.training.checkpoint import list_checkpoints
from rewardflow.training.synthetic import SyntheticData
from rewardflow.utils.atomic import atomic_write_bytes
from rewardflow.utils.locks import LOCK_NAME, FolderLock, FolderLockedError

HOLD = textwrap.dedent("""
    import sys, time
    from rewardflow.utils.locks import FolderLock
    FolderLock(sys.argv[1], "train").acquire()
    print("held", flush=True)
    time.sleep(600)
""")


def _holder(folder) -> subprocess.Popen:
    """A separate process that takes `folder`'s lock and keeps it until killed."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def _trainer(out_dir, steps=4, every=2) -> Trainer:
    cfg = TrainConfig.load(
        None,
        [
            f"out_dir={out_dir}",
            "data.batch_size=4",
            f"max_steps={steps}",
            f"checkpoint.every={every}",
            "checkpoint.keep_last=5",
            "progress=false",
            "tensorboard=false",
            "data.reward_keys=[a,b]",
        ],
    )
    return Trainer(cfg, data=lambda ctx: SyntheticData(ctx))


TRAIN_AND_HANG = textwrap.dedent("""
    import sys, time, torch
    from rewardflow.training import TrainConfig, Trainer
    from rewardflow.training.callbacks import FunctionCallback
    from rewardflow.training.synthetic import SyntheticData
    torch.set_num_threads(1)
    cfg = TrainConfig.load(None, [f"out_dir={sys.argv[1]}", "data.batch_size=4", "max_steps=4", "checkpoint.every=2",
                                  "checkpoint.keep_last=5", "progress=false", "tensorboard=false",
                                  "data.reward_keys=[a,b]"])
    def hang(trainer, step):
        if step == 2:  # after the step-2 checkpoint: a run in the middle of its work
            print("running", flush=True)
            time.sleep(600)
    Trainer(cfg, data=lambda ctx: SyntheticData(ctx), callbacks=[FunctionCallback(hang, every=1)]).train()
""")


@pytest.mark.timeout(180)
def test_second_trainer_on_a_running_folder_is_refused_and_a_killed_one_does_not_block(tmp_path):
    first = subprocess.Popen([sys.executable, "-c", TRAIN_AND_HANG, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        while (line := first.stdout.readline()) and line.strip() != "running":
            pass  # the trainer's own messages
        assert line.strip() == "running"
        ((step, ckpt),) = list_checkpoints(tmp_path)
        before = {p: p.read_bytes() for p in ckpt.rglob("*") if p.is_file()}
        log = (tmp_path / "log.jsonl").read_bytes()
        with pytest.raises(FolderLockedError) as exc:
            _trainer(tmp_path).train()
        msg = str(exc.value)
        assert str(tmp_path) in msg and f"pid {first.pid}" in msg and LOCK_NAME in msg
        # The refused run touched nothing of the running one.
        assert {p: p.read_bytes() for p in ckpt.rglob("*") if p.is_file()} == before
        assert (tmp_path / "log.jsonl").read_bytes() == log and [s for s, _ in list_checkpoints(tmp_path)] == [2]
    finally:
        first.kill()  # SIGKILL: no chance to remove its lock
        first.wait()
    assert (tmp_path / LOCK_NAME).exists()
    with pytest.warns(UserWarning, match="process that is gone"):
        out = _trainer(tmp_path).train()
    assert out["step"] == 4 and out["resumed_from"].endswith("step_0000002")
    assert not (tmp_path / LOCK_NAME).exists()


def _tiny_dataset(d: Path) -> Path:
    with ShardWriter(d, maxcount=4) as w:
        for i in range(4):
            s = generate_sample(ShapesConfig(), i)
            w.write(f"{i:06d}", {"png": encode_png(s.image), "txt": s.caption, "json": json.dumps(s.meta)})
    return d


def test_cli_reports_a_locked_folder_in_one_line(tmp_path, capsys):
    _tiny_dataset(tmp_path)
    holder = _holder(tmp_path)
    try:
        assert cli_main(["score", "--data", str(tmp_path), "--rewards", "sharpness", "--no-progress"]) == 1
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert "is in use by another train" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.parquet"))
    with pytest.warns(UserWarning, match="process that is gone"):
        assert cli_main(["score", "--data", str(tmp_path), "--rewards", "sharpness", "--no-progress"]) == 0
    assert len(list(tmp_path.glob("*.parquet"))) == 1


def test_lock_from_another_host_is_respected_and_an_unreadable_old_one_is_taken_over(tmp_path):
    other = {"pid": 1, "host": socket.gethostname() + "-elsewhere", "job": "score"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(other))
    with pytest.raises(FolderLockedError, match="delete"):
        FolderLock(tmp_path, "train").acquire()
    (tmp_path / LOCK_NAME).write_text("")  # a writer killed between create and write
    os.utime(tmp_path / LOCK_NAME, (0, 0))
    with pytest.warns(UserWarning), FolderLock(tmp_path, "train"):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    _trainer(tmp_path, steps=4, every=2).train()
    (step2, _), (step4, newest) = list_checkpoints(tmp_path)
    live = newest / "live.safetensors"
    live.write_bytes(live.read_bytes()[: live.stat().st_size // 2])  # a copy cut short
    t = _trainer(tmp_path, steps=4, every=2)
    with pytest.warns(UserWarning, match=r"step_0000004.*live.safetensors.*truncated"):
        assert t.resume()
    assert t.step == 2
    for _, path in list_checkpoints(tmp_path):
        (path / "model" / "model.safetensors").write_bytes(b"\x10\x00")
    with pytest.raises(ValueError, match="no checkpoint .* can be resumed from"), pytest.warns(UserWarning):
        _trainer(tmp_path).resume()


def test_outputs_get_the_umask_permissions(tmp_path):
    old = os.umask(0o002)
    try:
        p = atomic_write_bytes(tmp_path / "shared.bin", b"x")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o664


def test_identical_models_give_identical_bytes(tmp_path):
    from rewardflow.models import build_model, model_config_from_preset

    torch.manual_seed(0)
    model = build_model(model_config_from_preset("unet-tiny", reward_keys=["a", "b"]))
    digests = set()
    for i in range(6):  # safetensors orders metadata by a per-map random hash: six tries see both orders
        model.save_pretrained(tmp_path / str(i))
        digests.add(hashlib.sha256((tmp_path / str(i) / "model.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1


def _no_space(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_is_one_line_naming_the_path_and_leaves_nothing_behind(tmp_path, monkeypatch):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        monkeypatch.setattr(os, "fsync", _no_space)  # no mount rights here: fail the write as a full disk does
    try:
        with pytest.raises(OSError) as exc:
            atomic_write_bytes(mnt / "big.bin", os.urandom(256 * 1024))
        assert exc.value.errno == errno.ENOSPC and str(mnt / "big.bin") in str(exc.value)
        assert list(mnt.iterdir()) == []  # no temp file, no partial output
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_cli_full_disk_is_one_line_and_a_rerun_finishes(tmp_path, monkeypatch, capsys):
    _tiny_dataset(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _no_space)
        assert cli_main(["score", "--data", str(tmp_path), "--rewards", "sharpness", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "00000.parquet" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob(".*.tmp"))
    assert cli_main(["score", "--data", str(tmp_path), "--rewards", "sharpness", "--no-progress"]) == 0


def test_every_suggested_fix_is_a_real_key_or_flag(tmp_path, capsys):
    from rewardflow.data.binning import RewardBins
    from rewardflow.data.datasets import ShardDataset

    d = _tiny_dataset(tmp_path)
    assert cli_main(["score", "--data", str(d), "--rewards", "sharpness,cleanliness", "--no-progress"]) == 0
    table = pq.read_table(d / "00000.parquet")
    values = table.column("sharpness").to_numpy().copy()
    values[1] = np.nan
    pq.write_table(
        table.set_column(table.column_names.index("sharpness"), "sharpness", pa.array(values)), d / "00000.parquet"
    )
    # bins fit: the message names the CLI flag, and the flag exists and works.
    with pytest.raises(ValueError, match="--drop-nonfinite"):
        RewardBins.fit({"sharpness": values})
    assert cli_main(["bins", "fit", "--data", str(d), "--drop-nonfinite"]) == 0
    assert "on 3 scores (1 NaN/inf dropped)" in capsys.readouterr().out
    # training: the message names the config key, and the key exists and feeds the bad score as 0.5.
    with pytest.raises(ValueError, match=r"data\.nonfinite_rewards=neutral") as exc:
        ShardDataset(d, ["sharpness", "cleanliness"], batch_size=2)
    assert "00000.parquet" in str(exc.value)
    cfg = TrainConfig.load(None, ["data.nonfinite_rewards=neutral", "data.reward_keys=[sharpness,cleanliness]"])
    ds = ShardDataset(d, ["sharpness", "cleanliness"], batch_size=2, nonfinite_rewards=cfg.data.nonfinite_rewards)
    assert ds.num_samples == 4


def _shard_with_offsets(d: Path, n: int) -> tuple[Path, list[int]]:
    """One shard of n ShapesWorld samples; returns it and the byte offset where each sample starts."""
    import tarfile

    with ShardWriter(d, maxcount=n) as w:
        for i in range(n):
            s = generate_sample(ShapesConfig(), i)
            w.write(f"{i:06d}", {"png": encode_png(s.image), "txt": s.caption})
    shard = w.written[0]
    with tarfile.open(shard) as tar:
        starts = [m.offset for m in tar.getmembers() if m.name.endswith(".png")]
    return shard, starts


def test_truncated_shard_keeps_its_intact_part_and_names_what_it_skipped(tmp_path, capsys):
    from rewardflow.data.shards import ShardDamageWarning, iter_records, scan_keys

    shard, starts = _shard_with_offsets(tmp_path, 8)
    data = shard.read_bytes()
    cut = bytearray(data[: starts[5] + 700])  # cut inside sample 5's PNG ...
    cut[starts[1] + 512 + 60 : starts[1] + 512 + 90] = b"\xff" * 30  # ... and sample 1's PNG corrupted
    shard.write_bytes(bytes(cut))
    with pytest.warns(ShardDamageWarning, match=r"00000.tar is truncated.*'000005'"):
        keys = scan_keys(shard)
    assert keys == [f"{i:06d}" for i in range(5)]  # sample 1 is whole in the tar, its PNG is not
    with pytest.warns(ShardDamageWarning):
        assert [k for k, _ in iter_records(shard)] == keys
    # score: the intact part is scored; two damaged samples of 5 are over the 1 % default: exit 1 ...
    assert cli_main(["score", "--data", str(tmp_path), "--rewards", "sharpness", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--max-bad-fraction" in err and "Traceback" not in err
    assert pq.read_table(tmp_path / "00000.parquet").column("key").to_pylist() == [keys[0], *keys[2:]]
    skipped = {r["key"]: r["reason"] for r in json.loads((tmp_path / "_skipped.json").read_text())["00000.tar"]}
    assert "truncated" in skipped["000005"] and "corrupt png" in skipped["000001"]
    # ... and accepted when the user says so. Cut exactly between samples: the same rule.
    assert (
        cli_main(
            ["score", "--data", str(tmp_path), "--rewards", "sharpness", "--no-progress", "--max-bad-fraction", "0.5"]
        )
        == 0
    )
    shard.write_bytes(data[: starts[3]])  # ends after sample 2's txt member, no end marker
    with pytest.warns(ShardDamageWarning, match="end marker"):
        assert scan_keys(shard) == ["000000", "000001"]  # sample 2 may have lost members: dropped too


def test_corrupt_image_at_training_time_is_skipped_by_name_and_many_stop_the_run(tmp_path):
    from rewardflow.data.datasets import ShardDataset
    from rewardflow.data.shards import ShardDamageWarning

    shard, starts = _shard_with_offsets(tmp_path, 120)
    data = bytearray(shard.read_bytes())
    data[starts[7] + 512 + 60 : starts[7] + 512 + 90] = b"\xff" * 30  # flip bytes inside sample 7's PNG data
    shard.write_bytes(bytes(data))
    ds = ShardDataset(tmp_path, [], batch_size=8, shuffle=False, infinite=False)
    with pytest.warns(ShardDamageWarning, match=r"00000.tar: sample 000007 cannot be decoded"):
        batches = list(ds)
    keys = [k for b in batches for k in b["keys"]]
    assert "000007" not in keys and len(keys) == 119 and len(batches[0]["keys"]) == 8
    data[starts[20] + 512 + 60 : starts[20] + 512 + 90] = b"\xff" * 30  # two bad of 120: over 1%
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="2 samples cannot be decoded"), pytest.warns(ShardDamageWarning):
        list(ShardDataset(tmp_path, [], batch_size=8, shuffle=False, infinite=False))


def test_data_command_on_a_full_disk_leaves_no_temp_shard(tmp_path, monkeypatch, capsys):
    import tarfile

    mnt = tmp_path / "tiny"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode:
        monkeypatch.setattr(tarfile.TarFile, "addfile", _no_space)  # no mount rights: fail as a full disk does
    try:
        assert cli_main(["data", "shapes", "--out", str(mnt / "d"), "--num", "200", "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert "no space left on the device" in err and "00000.tar" in err and "Traceback" not in err
        assert [p.name for p in (mnt / "d").iterdir()] == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _stub_encoder(pixels):  # (B, 3, H, W) -> (B, 3, H/2, W/2): enough to exercise the latent path
    return torch.nn.functional.avg_pool2d(pixels, 2)


def test_latents_encode_skips_a_corrupt_image_by_name_and_stops_on_many(tmp_path):
    from rewardflow.data.latents import encode_shards
    from rewardflow.data.shards import ShardDamageWarning, scan_keys

    src = tmp_path / "src"
    shard, starts = _shard_with_offsets(src, 120)
    data = bytearray(shard.read_bytes())
    data[starts[7] + 512 + 60 : starts[7] + 512 + 90] = b"\xff" * 30
    shard.write_bytes(bytes(data))
    with pytest.warns(ShardDamageWarning, match=r"00000.tar: sample 000007 cannot be decoded"):
        stats = encode_shards(src, tmp_path / "lat", _stub_encoder, batch_size=16, progress=False)
    keys = scan_keys(tmp_path / "lat" / "00000.tar")
    assert stats.count == 119 and len(keys) == 119 and "000007" not in keys
    data[starts[20] + 512 + 60 : starts[20] + 512 + 90] = b"\xff" * 30  # two bad of 120: over 1%
    shard.write_bytes(bytes(data))
    with (
        pytest.raises(ValueError, match="latents encode: 2 samples cannot be decoded"),
        pytest.warns(ShardDamageWarning),
    ):
        encode_shards(src, tmp_path / "lat2", _stub_encoder, batch_size=16, progress=False)
    assert list((tmp_path / "lat2").glob("*.tar")) == [] and list((tmp_path / "lat2").glob(".*")) == []


@pytest.mark.parametrize(
    "code,words",
    [
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "permission denied"),
        (errno.EDQUOT, "disk quota exceeded"),
    ],
)
def test_cli_names_the_path_for_each_storage_fault(tmp_path, monkeypatch, capsys, code, words):
    _tiny_dataset(tmp_path)

    def fail(*args):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    assert cli_main(["score", "--data", str(tmp_path), "--rewards", "sharpness", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert words in err and str(tmp_path / "00000.parquet") in err and "Traceback" not in err


def test_read_only_mount_is_one_line(tmp_path, capsys):
    src = _tiny_dataset(tmp_path / "src")
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True).returncode:
        pytest.skip("no mount rights here; the same message is checked through an injected EROFS above")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True, capture_output=True)
        assert cli_main(["score", "--data", str(ro), "--rewards", "sharpness", "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert "read-only" in err and str(ro) in err and "Traceback" not in err
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


@pytest.mark.parametrize("command", [["demo", "--quick"], ["experiment", "paper", "--quick"]])
def test_demo_and_experiment_refuse_a_folder_in_use(tmp_path, capsys, command):
    holder = _holder(tmp_path)
    try:
        assert cli_main([*command, "--out", str(tmp_path), "--no-progress"]) == 1
    finally:
        holder.kill()
        holder.wait()
    assert "is in use by another train" in capsys.readouterr().err
    assert not (tmp_path / "stages").exists()


def test_canonical_safetensors_with_unusual_metadata(tmp_path):
    from safetensors import safe_open

    from rewardflow.utils.tensorfile import save_safetensors

    meta = {"z": "x\x7f\u2028é\x01", "captions": json.dumps(["a\u0001b", "ü", 'q"uote']), "m": "1", "b": ""}
    digests = set()
    for i in range(6):
        save_safetensors({"w": torch.arange(6.0).reshape(2, 3)}, tmp_path / f"{i}.safetensors", meta)
        digests.add(hashlib.sha256((tmp_path / f"{i}.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1
    with safe_open(str(tmp_path / "0.safetensors"), "pt") as f:
        assert f.metadata() == meta and f.get_tensor("w").sum() == 15
