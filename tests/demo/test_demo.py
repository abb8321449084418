"""The whole demo at toy size: every stage runs, the report names every figure, a rerun skips
finished stages, and a changed setting reruns only what depends on it."""

from __future__ import annotations

import io
import json

import pytest
import torch

from rewardflow.demo import DemoConfig, quick, run_demo
from rewardflow.studies.evaluate import prompt_entries, spearman  # spearman: re-exported from eval.control

from golden_helpers import check_golden, fingerprint

FIGURES = ("training_curves.png", "geneval.png", "samples.png", "control.png", "guidance_sweep.png")


def tiny() -> DemoConfig:
    # Smaller than --quick: one thread (no OpenMP oversubscription on shared CI machines).
    return DemoConfig.load(
        None,
        [
            "num_images=48",
            "shard_size=24",
            "steps=2",
            "eval_every=2",
            "eval_prompts=6",
            "eval_steps=1",
            "sample_steps=1",
            "geneval_per_category=1",
            "grid_prompts=2",
            "grid_seeds=1",
            "control_levels=[0.0, 1.0]",
            "control_images=2",
            "sweep_scales=[0.0, 2.0]",
            "sweep_text_scales=[1.0]",
            "sweep_reward_scales=[1.0]",
            "sweep_images=2",
            "threads=1",
        ],
        base=quick(),
    )


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = run_demo(tiny(), out, progress=False)
    return out, result


@pytest.mark.timeout(120)
def test_demo_writes_report_with_every_figure(demo_out):
    out, result = demo_out
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for name in FIGURES:
        assert (out / "figures" / name).stat().st_size > 1000
        assert f"figures/{name}" in html and f"figures/{name}" in md
    assert "GenEval-style accuracy per category" in md and "two_object" in md
    assert set(result["final"]) == {"baseline", "miro"}
    assert "noise_sigma" in result["final"]["miro"]["rewards"]
    # Curves: a point at step 0 and at the last step, every reward, for both models.
    for model in ("baseline", "miro"):
        evals = [json.loads(line) for line in (out / "runs" / model / "log.jsonl").read_text().splitlines()]
        steps = sorted({r["step"] for r in evals if r["kind"] == "eval"})
        assert steps == [0, 2]
        last = [r for r in evals if r["kind"] == "eval"][-1]
        assert {"reward/cleanliness", "reward/shapes_alignment", "geneval/overall"} <= set(last)
    # Both models are loadable pipelines; only MIRO takes reward targets.
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    cfg = json.loads((out / "models" / "miro" / "pipeline_config.json").read_text())
    assert cfg["reward_keys"] == list(tiny().rewards)
    assert json.loads((out / "models" / "baseline" / "pipeline_config.json").read_text())["reward_keys"] == []
    assert RewardFlowPipeline  # imported through the same path the demo uses


@pytest.mark.timeout(120)
def test_results_are_the_golden_ones(demo_out):
    """Bit-identical weights and numbers to the recorded toy run (before the other tests here
    rerun the folder with changed settings)."""
    out, _ = demo_out
    check_golden("demo_tiny", fingerprint(out, json.loads((out / "results.json").read_text())))


def test_rerun_skips_finished_stages_and_changed_setting_reruns_downstream(demo_out, capsys):
    out, _ = demo_out
    capsys.readouterr()
    run_demo(tiny(), out, progress=False)
    err = capsys.readouterr().err
    assert err.count("skipped") == 9  # every stage but the report
    changed = DemoConfig.load(None, ["control_levels=[0.0, 0.5]"], base=tiny())
    run_demo(changed, out, progress=False)
    err = capsys.readouterr().err
    assert err.count("skipped") == 8 and "control: dial colorfulness over 2 levels" in err


@pytest.mark.timeout(180)
def test_changed_reward_version_rescores_and_retrains(demo_out, monkeypatch, capsys):
    # A bumped reward version must not reuse scores, bins or models built on the old formula.
    from rewardflow.shapes.rewards.colorfulness import Colorfulness

    out, _ = demo_out
    monkeypatch.setattr(Colorfulness, "version", "test-bump")
    capsys.readouterr()
    run_demo(tiny(), out, progress=False)
    err = capsys.readouterr().err
    assert "skipped" not in err.split("score every image")[1].split("\n")[0]
    assert err.count("skipped") == 1  # only the data stage is still valid
    monkeypatch.undo()
    run_demo(tiny(), out, progress=False)  # back to the real version for the other tests


def test_sweep_saves_each_models_default_guidance(demo_out):
    out, result = demo_out
    sweep = json.loads((out / "stages" / "sweep.json").read_text())["result"]
    for mode in ("baseline", "miro"):
        cfg = json.loads((out / "models" / mode / "pipeline_config.json").read_text())
        best = sweep[mode]["best"]
        assert cfg["guidance_scale"] == best["guidance_scale"]
        assert cfg["text_guidance_scale"] == best["text_guidance_scale"]
        assert cfg["guidance_choice"]["candidates"] == len(sweep[mode]["rows"])
        rows = sweep[mode]["rows"]
        assert max(r["objective"] for r in rows) == next(
            r["objective"]
            for r in rows
            if r["scale"] == best["guidance_scale"] and r["text_scale"] == best["text_guidance_scale"]
        )
    # MIRO also tries three-branch guidance; the baseline cannot.
    assert any(r["text_scale"] is not None for r in sweep["miro"]["rows"])
    assert all(r["text_scale"] is None for r in sweep["baseline"]["rows"])
    md = (out / "report.md").read_text()
    assert "The same comparisons at one shared w" in md and "+-" in md


@pytest.mark.timeout(180)
def test_parallel_training_gives_the_sequential_models(demo_out, tmp_path, capsys):
    # threads=2 trains both models at once, one 1-thread child process each; the sequential
    # fixture trained with 1 thread, so the weights must match bit for bit. (Compared as tensors:
    # safetensors writes its metadata map in a per-process hash order, so file bytes may differ.)
    from safetensors.torch import load_file

    seq_out, _ = demo_out
    run_demo(DemoConfig.load(None, ["threads=2"], base=tiny()), tmp_path, progress=False)
    assert "2 stages in parallel" in capsys.readouterr().err
    for mode in ("baseline", "miro"):
        a, b = (load_file(d / "models" / mode / "model" / "model.safetensors") for d in (seq_out, tmp_path))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), mode
        stage = json.loads((tmp_path / "stages" / f"train_{mode}.json").read_text())
        assert stage["result"]["torch_threads"] == 1 and stage["seconds"] > 0
    assert "the two trainings at once" in (tmp_path / "report.md").read_text()


def test_stage_runner_parallel_skips_finished_and_records_each(tmp_path):
    from functools import partial

    from rewardflow.studies.stages import Stage, StageRunner

    r = StageRunner(tmp_path, total=3, stream=io.StringIO())
    r.run("a", "a", "sig-a", lambda: {"v": 0})
    stages = [
        Stage("a", "a", "sig-a", partial(dict, v=9)),
        Stage("b", "b", "sig-b", partial(dict, v=2)),
        Stage("c", "c", "sig-c", partial(dict, v=3)),
    ]
    assert r.run_parallel(stages, workers=2) == [{"v": 0}, {"v": 2}, {"v": 3}]  # "a" was done: not rerun
    assert [t["skipped"] for t in r.timings] == [False, True, False, False]
    assert json.loads((tmp_path / "stages" / "c.json").read_text())["result"] == {"v": 3}


def test_config_overrides_and_errors():
    c = DemoConfig.load(None, ["steps=7", "model_overrides.hidden_size=48"])
    # A dotted override sets one key and keeps the demo's other model defaults.
    assert c.steps == 7 and c.model_overrides["hidden_size"] == 48
    assert {k: v for k, v in c.model_overrides.items() if k != "hidden_size"} == {
        k: v for k, v in DemoConfig().model_overrides.items() if k != "hidden_size"
    }
    with pytest.raises(ValueError, match="unknown demo setting 'stepz'. Did you mean 'steps'"):
        DemoConfig.load(None, ["stepz=7"])
    # The training config's dialect: YAML-typed values checked against the field types.
    with pytest.raises(ValueError, match="demo setting 'train.max_steps' expects int, got 'many'"):
        DemoConfig.load(None, ["steps=many"])
    with pytest.raises(ValueError, match="'train.optim.lr' expects float"):
        DemoConfig.from_dict({"lr": [1]})
    assert DemoConfig.load(None, ["lr=3e-4", "control_levels=[0, 1]"]).control_levels == [0.0, 1.0]
    with pytest.raises(ValueError, match="control_reward"):
        DemoConfig(control_reward="aesthetic_score")


def test_prompt_entries_cover_every_category_and_respect_world_counts():
    entries = prompt_entries(4)
    assert len(entries) == 24 and len({e["tag"] for e in entries}) == 6
    assert all(int(r["count"]) <= 2 for e in entries for r in e["include"])


def test_spearman():
    assert spearman([0, 1, 2, 3], [1, 5, 7, 9]) == pytest.approx(1.0)
    assert spearman([0, 1, 2], [3, 2, 1]) == pytest.approx(-1.0)
