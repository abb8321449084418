"""Mechanics of rewardflow.shapes.control and `rewardflow eval` on a tiny random model (not the figures)."""

import json
import math

import numpy as np
import pytest

from rewardflow.cli import main
from rewardflow.shapes import control as C

from pipeline_helpers import REWARD_KEYS


def test_one_adjacent_swap_passes_despite_float_rounding():
    rho = C.spearman([0, 0.25, 0.5, 0.75, 1], [0.424, 0.499, 0.527, 0.513, 0.537])  # measured means
    assert rho == pytest.approx(0.9) and rho < 0.9  # scipy's float result sits just below 0.9
    assert C.spearman_passes(rho)
    assert not C.spearman_passes(C.spearman([0, 0.25, 0.5, 0.75, 1], [1, 3, 2, 5, 4]))  # two swaps: 0.8


def test_spearman_and_balanced_entries():
    assert C.spearman([0, 1, 2, 3], [0.1, 0.2, 0.5, 0.9]) == pytest.approx(1.0)
    assert C.spearman([0, 1, 2, 3], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(C.spearman([0, 1, 2], [1, 1, 1]))
    e = C.balanced_entries(14, max_count=2)
    assert [x["tag"] for x in e[:6]] == list(C.CATEGORIES) and e[6]["tag"] == C.CATEGORIES[0]
    assert e[0] != e[6] and all(int(r["count"]) <= 2 for x in e for r in x["include"])


def test_jobs_are_shared_and_results_have_their_shape(pipe):
    s = C.ControlSettings.quick(images_per_level=3, steps=2)
    S = C.Sampler(pipe, s, REWARD_KEYS, progress=False)
    ctl = C.control(S)
    # 2 rewards x 5 levels, but level 1 of either reward is the same high-quality job.
    assert len(S.cache) == 9
    iso = C.isolate(S)
    assert len(S.cache) == 13  # two isolate(k) jobs, one text-only and one plain (w = 0); high quality reused
    for k in REWARD_KEYS:
        row = ctl[k]
        assert row["levels"] == list(s.levels) and len(row["means"]) == 5 and len(row["sems"]) == 5
        assert row["pass"] == (row["spearman"] >= 0.9)
        assert iso[k]["delta"] == pytest.approx(iso[k]["isolate"] - iso[k]["high_quality"])
        assert iso[k]["over_plain"] == pytest.approx(iso[k]["isolate"] - iso[k]["plain"])
        assert iso[k]["over_text_only"] == pytest.approx(iso[k]["isolate"] - iso[k]["text_only"])
        assert iso[k]["over_text_only_sem"] >= 0.0
        assert iso[k]["pass_over_plain"] == (iso[k]["over_plain"] > 0)
    # The level-1 point of the sweep and the isolate baseline are literally the same images.
    assert ctl[REWARD_KEYS[0]]["means"][-1] == pytest.approx(iso[REWARD_KEYS[0]]["high_quality"])
    cross = C.isolate_cross(S)
    assert len(S.cache) == 13  # the cross table samples nothing new
    assert list(cross) == ["plain", "text only", "high quality"] + [f"isolate({k})" for k in REWARD_KEYS]
    for k in REWARD_KEYS:  # its diagonal and reference rows are the isolate table's columns
        assert cross[f"isolate({k})"][k] == iso[k]["isolate"]
        assert cross["high quality"][k] == iso[k]["high_quality"] and cross["plain"][k] == iso[k]["plain"]


def test_others_level_and_sweep_targets_reach_the_jobs(pipe):
    s = C.ControlSettings.quick(others=0.5, sweep_targets=((REWARD_KEYS[1], 0.25),), fixed=((REWARD_KEYS[0], 0.75),))
    S = C.Sampler(pipe, s, REWARD_KEYS, progress=False)
    jobs = C._control_jobs(S, REWARD_KEYS[0])  # the swept reward ignores its own `fixed` entry
    assert [dict(j.positive) for j in jobs] == [{REWARD_KEYS[0]: lv, REWARD_KEYS[1]: 0.5} for lv in s.levels]
    assert [dict(j.positive)[REWARD_KEYS[0]] for j in C._control_jobs(S, REWARD_KEYS[1])] == [0.75] * len(s.levels)
    assert all(set(dict(j.negative).values()) == {0.0} for j in jobs)
    # isolate: --fixed is the anchor, held in both branches and in the references, not for k itself.
    hq, iso, txt, plain = C._isolate_jobs(S, REWARD_KEYS[1])
    k0, k1 = REWARD_KEYS
    assert dict(iso.positive) == {k0: 0.75, k1: 1.0} and dict(iso.negative) == {k0: 0.75, k1: 0.0}
    assert dict(hq.positive) == dict(txt.positive) == dict(txt.negative) == dict(plain.positive) == {k0: 0.75, k1: 1.0}
    assert set(dict(hq.negative).values()) == {0.0} and plain.w == 0.0 and hq.w == txt.w == s.guidance
    assert dict(C._isolate_jobs(S, k0)[1].negative) == {k0: 0.0, k1: 1.0}  # k's own fixed entry is ignored
    sweep = C._guidance_jobs(S)
    assert [j.w for j in sweep] == list(s.scales)
    assert all(dict(j.positive) == {REWARD_KEYS[0]: 1.0, REWARD_KEYS[1]: 0.25} for j in sweep)
    md = C.ControlReport(
        "m",
        C.asdict(s),
        list(REWARD_KEYS),
        results={
            "guidance": {
                "rows": [{"w": 0.0, "overall": 0.5, "per_category": {}, "rewards": {k: 0.5 for k in REWARD_KEYS}}],
                "images": 6,
                "pass": False,
            }
        },
    ).to_markdown()
    assert f"{REWARD_KEYS[1]} = 0.25" in md


def test_text_guidance_switches_to_three_branches(pipe):
    # With w_t = w + 1 and the reward scale also w + 1, three branches reduce to the two-branch
    # formula at w: (1 - W) v(null, s-) + W v(c, s+). Any other reward scale must change the images.
    two = C.Sampler(pipe, C.ControlSettings.quick(steps=2, guidance=2.0), REWARD_KEYS, progress=False)
    three = C.Sampler(
        pipe, C.ControlSettings.quick(steps=2, guidance=3.0, text_guidance=3.0), REWARD_KEYS, progress=False
    )
    other = C.Sampler(
        pipe, C.ControlSettings.quick(steps=2, guidance=6.0, text_guidance=3.0), REWARD_KEYS, progress=False
    )
    entries = C.balanced_entries(3, 2)
    a, b, c = (S.get(S.job(entries))[0].astype(int) for S in (two, three, other))
    assert np.abs(a - b).max() <= 1  # equal up to uint8 rounding of float sums
    assert np.abs(a - c).max() > 1
    md = C.ControlReport("m", C.asdict(three.s), list(REWARD_KEYS)).to_markdown()
    assert "text scale w_t = 3" in md
    # w = 0 stays sampling without guidance under three-branch settings (w_r = 0 there would
    # sample the s- = all 0 conditioning): the plain reference and the sweep's first row.
    j3 = three.job(entries, w=0.0)
    assert j3.wt is None and three.job(entries).wt == 3.0
    assert np.array_equal(three.get(j3)[0], two.get(two.job(entries, w=0.0))[0])


def test_best_of_n_matches_selection_module(pipe):
    from rewardflow.sampling.selection import best_of_n

    s = C.ControlSettings.quick(steps=2, bon_prompts=2, bon_ns=(1, 2, 4))
    S = C.Sampler(pipe, s, REWARD_KEYS, progress=False)
    rows = C.best_of_n(S)
    assert set(rows) == set(REWARD_KEYS) | {"sum_of_bin_positions"}
    prompts = [e["prompt"] for e in C.balanced_entries(2, s.max_count)]
    for n, mean in zip(s.bon_ns, rows["sharpness"]["means"]):
        ref = best_of_n(
            pipe,
            prompts,
            n,
            "sharpness",
            seed=s.seed + 5000,
            guidance_scale=s.guidance,
            num_inference_steps=s.steps,
            progress=False,
        )
        assert mean == pytest.approx(float(ref.selected_scores.mean()), abs=1e-4)
    assert all(r["pass"] for r in rows.values())  # nested candidates: a max over a growing prefix


def test_run_control_report_and_errors(pipe, baseline_pipe_factory):
    s = C.ControlSettings.quick(images_per_level=2, steps=2, sweep_images=6, bon_prompts=2, bon_ns=(1, 2))
    rep = C.run_control(pipe, s, model="tiny", progress=False)
    assert set(rep.results) == set(C.SECTIONS) | {"isolate_cross"} and set(rep.timings_s) == set(C.SECTIONS)
    sd = rep.results["seeds"]
    assert sd["pass"] and sd["invariant_identical"] == sd["batch"] and sd["max_abs_diff"] < 1e-4
    g = rep.results["guidance"]
    assert [r["w"] for r in g["rows"]] == [0.0, 3.0] and all(0 <= r["overall"] <= 1 for r in g["rows"])
    md = rep.to_markdown()
    for title in (
        "**Control**",
        "**isolate(k)",
        "**Every reward under each isolate(j)**",
        "**Guidance sweep**",
        "**Seeds**",
        "**Best-of-N**",
    ):
        assert title in md
    json.dumps(rep.to_dict())  # plain data all the way down
    with pytest.raises(ValueError, match="reward keys"):
        C.run_control(baseline_pipe_factory(), s, progress=False)
    with pytest.raises(ValueError, match="sharpness"):
        C.run_control(pipe, s, keys=["aesthetic_score"], progress=False)
    with pytest.raises(ValueError, match="section"):
        C.run_control(pipe, C.ControlSettings.quick(sections=("nope",)), progress=False)


@pytest.fixture
def baseline_pipe_factory(tiny_text_encoder):
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    from pipeline_helpers import tiny_model

    return lambda: RewardFlowPipeline(tiny_model(reward_keys=()), tiny_text_encoder)


def test_cli_control_and_geneval_write_json_and_markdown(pipe, tmp_path, capsys):
    model = str(pipe.save_pretrained(tmp_path / "pipe"))
    out = tmp_path / "ctl"
    rc = main(
        [
            "eval",
            "control",
            "--model",
            model,
            "--out",
            str(out),
            "--quick",
            "--steps",
            "2",
            "--only",
            "seeds,best_of_n",
            "--no-progress",
            "--others",
            "0.5",
            "--sweep-targets",
            "sharpness=0.25",
            "--text-guidance",
            "2",
        ]
    )
    assert rc == 0
    data = json.loads((out / "control.json").read_text())
    assert set(data["results"]) == {"seeds", "best_of_n"} and data["settings"]["steps"] == 2
    assert data["settings"]["text_guidance"] == 2.0
    assert data["settings"]["others"] == 0.5 and data["settings"]["sweep_targets"] == [["sharpness", 0.25]]
    capsys.readouterr()
    assert (
        main(["eval", "control", "--model", model, "--out", str(out), "--quick", "--sweep-targets", "sharpness"]) != 0
    )
    assert "--sweep-targets 'sharpness' must look like key=value" in capsys.readouterr().err
    assert "**Best-of-N**" in (out / "control.md").read_text()
    _control_uses_the_saved_guidance(model, tmp_path)
    rc = _geneval(model, tmp_path / "ge", 2)
    assert rc == 0
    ge = json.loads((tmp_path / "ge" / "geneval.json").read_text())
    assert sum(ge["counts"].values()) == 6 and len(ge["per_image"]) == 6
    rc = _geneval(model, tmp_path / "ge_none", 1, "--reward", "sharpness=none")  # an unspecified target
    assert rc == 0 and "sharpness: none" in (tmp_path / "ge_none" / "geneval.md").read_text()
    assert main(["eval", "control", "--model", model, "--out", str(out), "--only", "bogus"]) == 1
    assert "bogus" in capsys.readouterr().err
    assert np.isfinite(ge["overall"])
    assert ge["reward_targets"] == {"sharpness": 1.0, "colorfulness": 1.0}
    rc = _geneval(model, tmp_path / "ge2", 2, "--reward", "colorfulness=0.5", "--negative-reward", "colorfulness=0.5")
    ge2 = json.loads((tmp_path / "ge2" / "geneval.json").read_text())
    assert (
        rc == 0
        and ge2["reward_targets"]["colorfulness"] == 0.5
        and ge2["negative_reward_targets"]["colorfulness"] == 0.5
    )
    assert "s- = {sharpness: 0, colorfulness: 0.5}" in (tmp_path / "ge2" / "geneval.md").read_text()
    capsys.readouterr()
    assert main(["eval", "geneval", "--model", model, "--out", str(tmp_path / "ge3"), "--reward", "nope=1"]) != 0
    assert "unknown reward key" in capsys.readouterr().err


def _control_uses_the_saved_guidance(model, tmp_path):
    """Without --guidance, eval control samples at the default a sweep saved in the folder (as
    eval geneval and rewardflow sample do); --guidance still wins."""
    from rewardflow.studies.evaluate import save_default_guidance

    best = {"guidance_scale": 2.5, "text_guidance_scale": 3.0, "guidance_interval": None}
    save_default_guidance(model, {"rows": [], "best": best}, images=6, steps=2)

    def settings(*extra):
        out = tmp_path / f"ctl{len(extra)}"
        args = ["eval", "control", "--model", model, "--out", str(out), "--quick", "--only", "seeds", *extra]
        assert main(args + ["--no-progress"]) == 0
        return json.loads((out / "control.json").read_text())["settings"]

    saved = settings()
    assert (saved["guidance"], saved["text_guidance"]) == (2.5, 3.0)
    given = settings("--guidance", "4")
    assert (given["guidance"], given["text_guidance"]) == (4.0, None)


def _geneval(model, out, steps, *extra) -> int:
    args = ["eval", "geneval", "--model", model, "--out", str(out), "--per-category", "1", "--steps", str(steps)]
    return main(args + ["--no-progress", *extra])
