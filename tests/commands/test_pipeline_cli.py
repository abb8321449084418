import json

import pytest
from PIL import Image

from rewardflow.cli import main
from rewardflow.sampling.prompts import load_prompts


def _sample(model, prompts, out, *extra) -> int:
    """`rewardflow sample --model MODEL --prompts PROMPTS --out OUT EXTRA...`, its exit code."""
    return main(["sample", "--model", model, "--prompts", prompts, *extra, "--out", str(out)])


def _records(out):
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_load_prompts_forms(tmp_path):
    (tmp_path / "p.txt").write_text("a red circle\n\n two squares \n")
    (tmp_path / "p.jsonl").write_text('{"prompt": "x", "tag": "colors"}\n{"prompt": "y"}\n')
    (tmp_path / "p.tsv").write_text("Prompt\tCategory\nhello\tA\nworld\tB\n")
    assert load_prompts(str(tmp_path / "p.txt")) == (["a red circle", "two squares"], None)
    assert load_prompts(str(tmp_path / "p.jsonl"))[0] == ["x", "y"]
    assert load_prompts(str(tmp_path / "p.tsv"))[0] == ["hello", "world"]
    assert load_prompts("a blue triangle") == (["a blue triangle"], None)
    prompts, entries = load_prompts("shapes", max_prompts=3)
    assert len(prompts) == 3 and entries[0]["prompt"] == prompts[0] and "include" in entries[0]
    with pytest.raises(FileNotFoundError):
        load_prompts(str(tmp_path / "missing.txt"))
    (tmp_path / "bad.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match="prompt"):
        load_prompts(str(tmp_path / "bad.jsonl"))


def test_sample_writes_pngs_records_scores_grid(saved, tmp_path):
    (tmp_path / "p.txt").write_text("a red circle\ntwo squares\n")
    out = tmp_path / "out"
    rc = _sample(
        saved,
        str(tmp_path / "p.txt"),
        out,
        "--reward",
        "sharpness=0.5",
        "--negative-reward",
        "colorfulness=0.25",
        "--steps",
        "2",
        "--guidance",
        "3",
        "--seed",
        "4",
        "--num-per-prompt",
        "2",
        "--score",
        "colorfulness,cleanliness",
        "--grid",
    )
    assert rc == 0
    recs = _records(out)
    assert [r["seed"] for r in recs] == [4, 5, 6, 7] and recs[2]["prompt"] == "two squares"
    r = recs[0]
    assert r["reward_targets"] == {"sharpness": 0.5, "colorfulness": 1.0}
    assert r["negative_reward_targets"] == {"sharpness": 0.0, "colorfulness": 0.25}
    assert (r["guidance_scale"], r["num_inference_steps"], r["solver"]) == (3.0, 2, "euler")
    assert set(r["scores"]) == {"colorfulness", "cleanliness"}
    assert Image.open(out / r["file"]).size == (32, 32)
    assert Image.open(out / "grid.png").size == (64, 64)


def test_sample_modes_and_best_of(saved, tmp_path, capsys):
    out = tmp_path / "iso"
    assert _sample(saved, "a circle", out, "--mode", "isolate:colorfulness", "--steps", "1", "--solver", "heun") == 0
    assert _records(out)[0]["negative_reward_targets"] == {"sharpness": 1.0, "colorfulness": 0.0}
    out = tmp_path / "iso_anchor"
    assert (
        _sample(saved, "a circle", out, "--mode", "isolate:colorfulness", "--anchor", "sharpness=0.25", "--steps", "1")
        == 0
    )
    r = _records(out)[0]
    assert r["reward_targets"] == {"sharpness": 0.25, "colorfulness": 1.0}
    assert r["negative_reward_targets"] == {"sharpness": 0.25, "colorfulness": 0.0}
    assert _sample(saved, "a circle", tmp_path / "bad", "--anchor", "sharpness=0.25", "--steps", "1") == 1
    assert "--anchor applies to --mode isolate" in capsys.readouterr().err
    out = tmp_path / "pw"
    assert _sample(saved, "a circle", out, "--mode", "pairwise:sharpness,colorfulness,0.3", "--steps", "1") == 0
    assert _records(out)[0]["negative_reward_targets"] == {"sharpness": 0.3, "colorfulness": 0.7}
    out = tmp_path / "bon"
    assert (
        _sample(saved, "a circle", out, "--best-of", "3", "--select", "colorfulness", "--steps", "1", "--seed", "2")
        == 0
    )
    r = _records(out)[0]
    assert r["candidate_seeds"] == [2, 3, 4] and len(r["candidate_scores"]) == 3
    assert r["seed"] == r["candidate_seeds"][max(range(3), key=lambda j: r["candidate_scores"][j])]


def test_sample_unspecified_reward(saved, tmp_path):
    out = tmp_path / "none"
    assert _sample(saved, "a circle", out, "--reward", "sharpness=none", "--steps", "1") == 0
    r = _records(out)[0]
    assert r["reward_targets"] == {"sharpness": None, "colorfulness": 1.0}
    assert r["negative_reward_targets"] == {"sharpness": None, "colorfulness": 0.0}  # no contrast on it
    out = tmp_path / "contrast"
    assert (
        _sample(
            saved, "a circle", out, "--reward", "sharpness=None", "--negative-reward", "sharpness=0", "--steps", "1"
        )
        == 0
    )
    assert _records(out)[0]["negative_reward_targets"]["sharpness"] == 0.0


def test_sample_errors_are_clear(saved, tmp_path, capsys):
    assert _sample(saved, "a", tmp_path, "--reward", "aesthetic=1") == 1
    err = capsys.readouterr().err
    assert "aesthetic" in err and "sharpness" in err and "colorfulness" in err
    assert _sample(saved, "a", tmp_path, "--reward", "sharpness=2") == 1
    assert "[0, 1]" in capsys.readouterr().err
    assert _sample(saved, "a", tmp_path, "--mode", "weird") == 1
    assert _sample(str(tmp_path / "none"), "a", tmp_path) == 1
    assert _sample(saved, "a", tmp_path, "--num-per-prompt", "0") == 1
    assert "--num-per-prompt must be >= 1, got 0" in capsys.readouterr().err


def test_target_search_command(saved, tmp_path):
    out = tmp_path / "search"
    rc = main(
        [
            "target-search",
            "--model",
            saved,
            "--prompts",
            "shapes",
            "--max-prompts",
            "2",
            "--sweep",
            "sharpness=0:1:3",
            "--metric",
            "reward:colorfulness",
            "--steps",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    res = json.loads((out / "target_search.json").read_text())
    assert [r["reward_targets"]["sharpness"] for r in res["rows"]] == [0.0, 0.5, 1.0]
    assert res["best"]["colorfulness"] == 1.0 and (out / "target_search.md").is_file()
    assert (
        main(
            [
                "target-search",
                "--model",
                saved,
                "--prompts",
                "shapes",
                "--max-prompts",
                "2",
                "--sweep",
                "sharpness=0,1",
                "--metric",
                "geneval",
                "--steps",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )


def test_target_search_geneval_refuses_real_geneval_prompts(saved, tmp_path, capsys):
    """The GenEval-style metric detects ShapesWorld's shapes: COCO prompts get a clear error."""
    args = ["target-search", "--model", saved, "--prompts", "geneval", "--max-prompts", "3", "--sweep", "sharpness=0,1"]
    assert main(args + ["--metric", "geneval", "--steps", "1", "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "scores ShapesWorld images" in err and "bench" in err and "--prompts shapes" in err


def test_score_lists_rewards_without_a_dataset(capsys):
    """`score --list` needs no --data; each line gives the reward's whole first paragraph."""
    assert main(["score", "--list"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("colorfulness"))
    assert "falling in proportion as the image is desaturated" in line
    assert "clip_score" in out and "vqa_score" in out
    assert main(["score"]) == 1
    assert "--data DIR is required" in capsys.readouterr().err
