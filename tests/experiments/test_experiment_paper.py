import json

import numpy as np
import pytest

from rewardflow.experiments import load_configs, model_specs, tts_curves

from golden_helpers import check_golden, fingerprint

TINY = [
    "rewards=[shapes_alignment, cleanliness]",
    "control_reward=cleanliness",
    "sweep_reward=cleanliness",
    "num_images=48",
    "shard_size=48",
    "steps=2",
    "eval_every=1",
    "geneval_per_category=1",
    "eval_prompts=6",
    "threads=1",
    "tts_max_n=3",
]


def test_set_routes_keys_to_demo_or_experiment():
    cfg, paper = load_configs(None, ["steps=7", "tts_max_n=5", "sweep_reward=sharpness"], quick=True)
    assert cfg.steps == 7 and paper.tts_max_n == 5 and paper.sweep_reward == "sharpness"
    assert list(model_specs(cfg, paper)) == ["baseline", "miro"] + [f"only_{r}" for r in cfg.rewards]
    assert model_specs(cfg, paper)["only_sharpness"] == ("single", ["sharpness"])
    with pytest.raises(ValueError, match="sweep_reward"):
        load_configs(None, ["sweep_reward=nope"], quick=True)
    with pytest.raises(ValueError, match="unknown demo setting"):
        load_configs(None, ["not_a_setting=1"], quick=True)
    with pytest.raises(ValueError, match="Did you mean 'tts_max_n'"):  # a near name of either config
        load_configs(None, ["tts_max=5"], quick=True)
    with pytest.raises(ValueError, match="experiment setting 'tts_max_n' expects int"):
        load_configs(None, ["tts_max_n=lots"], quick=True)
    assert load_configs(None, ["tuned_targets={colorfulness: 0.5}"], quick=True)[1].tuned_targets == {
        "colorfulness": 0.5
    }
    with pytest.raises(ValueError, match="tuned_targets: unknown reward"):
        load_configs(None, ["tuned_targets={nope: 0.5}"], quick=True)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        load_configs(None, ["tuned_targets={colorfulness: 2}"], quick=True)


def test_tts_curves_are_prefix_maxima():
    s = np.array([[0.1, 0.5, 0.3], [0.4, 0.2, 0.9]])
    c = tts_curves({"r": s}, 3)["r"]
    assert c == pytest.approx([0.25, 0.45, 0.7])
    assert all(b >= a for a, b in zip(c, c[1:]))


def test_experiment_paper_smoke(tmp_path):
    """The whole experiment at toy size: every stage runs, results.md has every section and figure,
    the docs copy gets its figures, hand notes survive a rewrite, and a rerun skips every stage."""
    from rewardflow.cli import main

    out, md = tmp_path / "paper", tmp_path / "docs" / "RESULTS.md"
    args = ["experiment", "paper", "--quick", "--out", str(out), "--no-progress", "--results-md", str(md)]
    for s in TINY:
        args += ["--set", s]
    assert main(args) == 0
    text = (out / "results.md").read_text()
    for head in (
        "(a) Training speedup",
        "(b) GenEval",
        "(c) Reward radar",
        "(d) Test-time scaling",
        "(e) Target sweep",
    ):
        assert head in text
    assert "only_shapes_alignment" in text and "only_cleanliness" in text
    assert text.count("| model | metric | baseline final |") == 2  # own default and shared w
    assert "Each model at its own default guidance" in text
    for f in ("speedup_curves", "speedup_curves_shared", "geneval", "radar", "tts", "target_sweep"):
        assert (out / "figures" / f"{f}.png").stat().st_size > 1000
        assert (md.parent / "results_figures" / f"{f}.png").is_file()
    assert "results_figures/radar.png" in md.read_text()
    assert "rewardflow experiment paper --quick" in md.read_text()
    _snapshots_replay_the_logged_curve(out)
    check_golden("paper_tiny", fingerprint(out, json.loads((out / "results.json").read_text())))
    md.write_text(md.read_text().replace("<!-- notes -->", "<!-- notes -->\nhand-written finding"))
    stages = sorted(p.name for p in (out / "stages").glob("*.json"))
    before = {p: json.loads((out / "stages" / p).read_text())["finished"] for p in stages}
    assert main(args) == 0
    assert "hand-written finding" in md.read_text()
    after = {p: json.loads((out / "stages" / p).read_text())["finished"] for p in stages}
    assert before == after  # nothing recomputed

    # Tuned targets re-run MIRO's training (its curves gain a tuned variant) and add one table;
    # the baseline's stages stay as they were.
    assert main(args + ["--set", "tuned_targets={cleanliness: 0.5}"]) == 0
    again = {p: json.loads((out / "stages" / p).read_text())["finished"] for p in stages}
    assert again["train_baseline.json"] == before["train_baseline.json"]
    assert again["train_miro.json"] != before["train_miro.json"]
    rows = [json.loads(line) for line in (out / "runs" / "miro" / "log.jsonl").read_text().splitlines()]
    assert any("tuned/reward/cleanliness" in r for r in rows if r.get("kind") == "eval")
    text = (out / "results.md").read_text()
    assert (
        "| miro_tuned | reward/cleanliness |" in text
        and "Goal (miro_tuned ahead of the baseline overall by > 2 s.e.)" in text
    )
    assert "s+ = cleanliness = 0.5" in text


def _snapshots_replay_the_logged_curve(out):
    """The kept EMA weights, sampled again at the shared w, give the curve logged during training
    exactly: the own-guidance curves differ from the logged ones only by the guidance."""
    from rewardflow.sampling.pipeline import RewardFlowPipeline
    from rewardflow.studies import evaluate as ev
    from rewardflow.studies.evaluations import logged_curves
    from rewardflow.studies.training import SNAPSHOTS

    cfg = json.loads((out / "experiment_config.json").read_text())["demo"]
    run = out / "runs" / "miro"
    logged = logged_curves(run)
    entries = ev.prompt_entries(max(1, cfg["eval_prompts"] // 6), offset=cfg["geneval_per_category"])
    pipe = RewardFlowPipeline.from_pretrained(out / "models" / "miro")
    again = ev.curves_from_snapshots(
        pipe,
        run / SNAPSHOTS,
        entries,
        cfg["rewards"],
        cfg["eval_steps"],
        cfg["seed"] + 1000,
        cfg["sample_batch"],
        cfg["guidance"],
    )
    assert [r["step"] for r in again] == [r["step"] for r in logged] == [0, 1, 2]
    for a, b in zip(again, logged):
        assert a["reward/shapes_alignment"] == b["reward/shapes_alignment"]
        assert a["geneval/overall"] == b["geneval/overall"]
    assert not (out / "runs" / "only_cleanliness" / SNAPSHOTS).exists()  # kept for the compared pair only
