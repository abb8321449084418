"""`rewardflow sample` writes images batch by batch and a rerun continues an interrupted request
with the same pixels as an uninterrupted one."""

import json

from rewardflow.cli import main
from rewardflow.sampling.sample_folder import SampleFolder


def _args(saved, out, *extra):
    return [
        "sample",
        "--model",
        saved,
        "--prompts",
        "shapes",
        "--max-prompts",
        "5",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--seed",
        "3",
        "--score",
        "sharpness",
        "--out",
        str(out),
        *extra,
    ]


def _files(out):
    return {p.name: p.read_bytes() for p in sorted((out / "images").glob("*.png"))}


def test_interrupted_sample_continues_to_the_same_images(saved, tmp_path, monkeypatch, capsys):
    assert main(_args(saved, tmp_path / "straight")) == 0
    calls = {"n": 0}
    real = SampleFolder.write

    def write_then_die(self, images, records):
        real(self, images, records)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed after two batches: four images on disk

    with monkeypatch.context() as m:
        m.setattr(SampleFolder, "write", write_then_die)
        assert main(_args(saved, tmp_path / "cut")) == 130
    assert len(_files(tmp_path / "cut")) == 4
    # A line cut by a kill is dropped and its image made again.
    rec = tmp_path / "cut" / "samples.jsonl"
    rec.write_text(rec.read_text()[:-20])
    capsys.readouterr()
    assert main(_args(saved, tmp_path / "cut")) == 0
    assert "2 of 5 images already made; continuing" in capsys.readouterr().out  # whole batches only
    assert _files(tmp_path / "cut") == _files(tmp_path / "straight")
    a, b = ((tmp_path / d / "samples.jsonl").read_text() for d in ("cut", "straight"))
    assert a == b and len(a.splitlines()) == 5
    assert json.loads(a.splitlines()[4])["seed"] == 7 and "sharpness" in json.loads(a.splitlines()[0])["scores"]
    # Run again: nothing to do, nothing rewritten.
    assert main(_args(saved, tmp_path / "cut")) == 0
    assert (tmp_path / "cut" / "samples.jsonl").read_text() == a


def test_a_folder_of_another_request_is_refused(saved, tmp_path, capsys):
    assert main(_args(saved, tmp_path)) == 0
    before = (tmp_path / "samples.jsonl").read_text()
    assert main(_args(saved, tmp_path, "--guidance", "2.5")) == 1
    err = capsys.readouterr().err
    assert "holds images of another request" in err and "guidance_scale" in err and "another --out" in err
    assert (tmp_path / "samples.jsonl").read_text() == before
