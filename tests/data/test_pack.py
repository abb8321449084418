"""`data pack`: folder / table -> shards, caption and corrupt-image policies, resize, readability."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from rewardflow.data.datasets import ShardDataset
from rewardflow.data.pack import pack
from rewardflow.data.shards import iter_shard, list_shards


def _img(path, w, h, fmt="PNG", seed=0):
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    for i in range(5):
        _img(d / f"p{i}.png", 20, 12, seed=i)
        (d / f"p{i}.txt").write_text(f"caption {i}\n")
    _img(d / "sub" / "j.jpg", 12, 20, fmt="JPEG")
    (d / "sub" / "j.txt").write_text("a jpeg")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (d / "broken.txt").write_text("broken")
    return d


def test_pack_folder_resized_and_readable(folder, tmp_path):
    out = tmp_path / "out"
    rep = pack(out, images=folder, shard_size=4, size=8, progress=False)
    assert (rep.written, rep.corrupt, rep.missing_caption) == (6, 1, 0)
    assert [p.name for p in rep.shards] == ["00000.tar", "00001.tar"]
    samples = [s for p in list_shards(out) for s in iter_shard(p)]
    assert {s.text() for s in samples} >= {"caption 0", "a jpeg"}
    assert any("jpg" in s.members for s in samples)
    b = next(iter(ShardDataset(out, batch_size=6, infinite=False)))
    assert b["pixels"].shape == (6, 3, 8, 8)


def test_missing_caption_policies(folder, tmp_path):
    (folder / "p1.txt").unlink()
    with pytest.raises(ValueError, match="no caption.*p1.png.*--missing-caption"):
        pack(tmp_path / "a", images=folder, progress=False)
    rep = pack(tmp_path / "b", images=folder, missing_caption="skip", progress=False)
    assert (rep.written, rep.missing_caption) == (5, 1)
    rep = pack(tmp_path / "c", images=folder, missing_caption="empty", progress=False)
    assert rep.written == 6
    with pytest.raises(ValueError, match="already holds shards"):
        pack(tmp_path / "c", images=folder, missing_caption="empty", progress=False)


def test_pack_tables(folder, tmp_path):
    rows = {"file": ["p0.png", "sub/j.jpg", "nope.png"], "text": ["zero", "jay", "gone"]}
    pq.write_table(pa.table(rows), tmp_path / "t.parquet")
    rep = pack(
        tmp_path / "o1",
        images=folder,
        table=tmp_path / "t.parquet",
        path_column="file",
        caption_column="text",
        progress=False,
    )
    assert (rep.written, rep.corrupt) == (2, 1)  # a missing file counts as unreadable
    (folder / "t.csv").write_text("path,caption\np0.png,zero\np2.png,two\n")
    rep = pack(tmp_path / "o2", table=folder / "t.csv", progress=False)  # paths relative to the table
    texts = [s.text() for s in iter_shard(rep.shards[0])]
    assert texts == ["zero", "two"]
    raw = [s for s in iter_shard(rep.shards[0])][0].members["png"]
    assert raw == (folder / "p0.png").read_bytes()  # no resize: original bytes kept
    with pytest.raises(ValueError, match="no column 'path'.*file"):
        pack(tmp_path / "o3", images=folder, table=tmp_path / "t.parquet", progress=False)


def test_cli(folder, tmp_path, capsys):
    from rewardflow.cli import main

    assert (
        main(
            [
                "data",
                "pack",
                "--images",
                str(folder),
                "--out",
                str(tmp_path / "o"),
                "--size",
                "8",
                "--shard-size",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "packed 6 images into 2 shard(s); skipped 1 unreadable" in capsys.readouterr().out
    (folder / "p3.txt").unlink()
    assert main(["data", "pack", "--images", str(folder), "--out", str(tmp_path / "o2"), "--no-progress"]) == 1
    assert "--missing-caption" in capsys.readouterr().err


def test_pack_stops_when_too_many_images_are_unreadable(folder, tmp_path, capsys):
    from rewardflow.cli import main

    (folder / "broken2.png").write_bytes(b"\x89PNG\r\n\x1a\nalso not")
    (folder / "broken2.txt").write_text("broken too")
    with pytest.raises(ValueError, match=r"2 images cannot be read .*broken.*--max-bad-fraction"):
        pack(tmp_path / "out", images=folder, shard_size=4, progress=False)
    assert (
        main(
            [
                "data",
                "pack",
                "--images",
                str(folder),
                "--out",
                str(tmp_path / "out2"),
                "--no-progress",
                "--max-bad-fraction",
                "0.5",
            ]
        )
        == 0
    )
    assert "skipped 2 unreadable" in capsys.readouterr().out
