"""ShapesWorld shards on disk: contents, determinism, worker independence, CLI."""

import io
import json

import numpy as np
from PIL import Image

from rewardflow.cli import main as cli_main
from rewardflow.data.shards import iter_shard, list_shards
from rewardflow.shapes import SHAPES_PRESETS, generate_dataset, generate_sample, sample_seed


def _read(d):
    return [(s.key, s.members) for p in list_shards(d) for s in iter_shard(p)]


def test_shards_hold_png_txt_json(tmp_path):
    cfg = SHAPES_PRESETS["full"]
    shards = generate_dataset(cfg, 25, tmp_path, seed=7, shard_size=10, progress=False)
    assert [p.name for p in shards] == ["00000.tar", "00001.tar", "00002.tar"]
    rows = _read(tmp_path)
    assert [k for k, _ in rows] == [f"{i:09d}" for i in range(25)]
    for i, (_key, m) in enumerate(rows):
        assert set(m) == {"png", "txt", "json"}
        img = np.asarray(Image.open(io.BytesIO(m["png"])))
        meta = json.loads(m["json"])
        ref = generate_sample(cfg, sample_seed(7, i))
        assert np.array_equal(img, ref.image)
        assert m["txt"].decode() == ref.caption == meta["caption"]
        assert meta["clean_caption"] and meta["objects"] and "degradations" in meta
    info = json.loads((tmp_path / "shapes_config.json").read_text())
    assert info["num"] == 25 and info["seed"] == 7


def test_dataset_bytes_depend_on_seed_not_workers(tmp_path):
    cfg = SHAPES_PRESETS["easy"]
    generate_dataset(cfg, 30, tmp_path / "a", seed=3, shard_size=8, workers=1, progress=False)
    generate_dataset(cfg, 30, tmp_path / "b", seed=3, shard_size=8, workers=2, progress=False)
    generate_dataset(cfg, 30, tmp_path / "c", seed=4, shard_size=8, workers=1, progress=False)
    for name in ("00000.tar", "00003.tar"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "00000.tar").read_bytes() != (tmp_path / "c" / "00000.tar").read_bytes()


def test_cli_data_shapes(tmp_path, capsys):
    rc = cli_main(
        [
            "data",
            "shapes",
            "--num",
            "12",
            "--size",
            "24",
            "--out",
            str(tmp_path),
            "--preset",
            "easy",
            "--seed",
            "1",
            "--shard-size",
            "5",
            "--no-progress",
        ]
    )
    assert rc == 0 and "wrote 12 samples in 3 shards" in capsys.readouterr().out
    rows = _read(tmp_path)
    assert len(rows) == 12
    assert np.asarray(Image.open(io.BytesIO(rows[0][1]["png"]))).shape == (24, 24, 3)
    assert cli_main(["data", "shapes", "--num", "0", "--out", str(tmp_path / "x")]) == 1
    small = ["data", "shapes", "--num", "3", "--out", str(tmp_path), "--no-progress"]
    assert cli_main(small) == 1  # refuses to mix with the 3 shards already there
    assert cli_main(small + ["--overwrite"]) == 0 and len(_read(tmp_path)) == 3
