import json

import pytest
import torch

from rewardflow.sampling.target_search import linspace_grid, parse_sweep, reward_metric, target_search
from rewardflow.shapes.geneval import geneval_metric


def test_grid_and_sweep_parsing():
    assert linspace_grid(9) == [i / 8 for i in range(9)]
    assert parse_sweep("aesthetic_score=0:1:5") == ("aesthetic_score", [0, 0.25, 0.5, 0.75, 1.0])
    assert parse_sweep("a=0.2, 0.4") == ("a", [0.2, 0.4])
    for bad in ("a", "a=", "=0:1:3", "a=x:1:3"):
        with pytest.raises(ValueError, match="key="):
            parse_sweep(bad)


def test_finds_planted_optimum_with_common_seeds(pipe, monkeypatch):
    seen = []

    def metric(images, prompts):
        # The pipeline's recorded targets are what we reward: a peak at sharpness = 0.625.
        seen.append(images.shape[0])
        return -abs(metric.targets["sharpness"] - 0.625)

    calls = []
    real_call = type(pipe).__call__

    def spy(self, prompts, **kw):
        calls.append(kw)
        metric.targets = self.resolve_targets(kw["reward_targets"]).positive
        return real_call(self, prompts, **kw)

    monkeypatch.setattr(type(pipe), "__call__", spy)
    res = target_search(
        pipe, ["a", "b"], metric, {"sharpness": linspace_grid(9)}, seed=5, num_inference_steps=1, progress=False
    )
    assert res.best == {"sharpness": 0.625, "colorfulness": 1.0} and res.best_value == 0.0
    assert len(res.rows) == 9 and seen == [2] * 9
    assert {c["seed"] for c in calls} == {5}  # common random numbers across the grid
    md = res.to_markdown()
    assert "| sharpness |" in md and "**(best)**" in md
    assert json.loads(res.to_json())["best"] == res.best


def test_two_key_grid_with_real_reward_and_base(pipe):
    res = target_search(
        pipe,
        ["a red circle"],
        reward_metric("colorfulness"),
        {"sharpness": [0.0, 1.0], "colorfulness": [0.0, 1.0]},
        num_inference_steps=1,
        progress=False,
    )
    assert [r["reward_targets"] for r in res.rows] == [
        {"sharpness": s, "colorfulness": c} for s in (0.0, 1.0) for c in (0.0, 1.0)
    ]
    values = [r["metric"] for r in res.rows]
    assert res.best_value == max(values) and res.metric_name == "reward:colorfulness"
    low = target_search(
        pipe,
        ["a"],
        reward_metric("colorfulness"),
        {"sharpness": [0.0, 1.0]},
        base={"colorfulness": 0.5},
        maximize=False,
        num_inference_steps=1,
        progress=False,
    )
    assert all(r["reward_targets"]["colorfulness"] == 0.5 for r in low.rows)
    assert low.best_value == min(r["metric"] for r in low.rows)


def test_errors_before_sampling(pipe):
    with pytest.raises(ValueError, match="unknown reward key.*sharpness"):
        target_search(pipe, ["a"], lambda i, p: 0.0, {"aesthetic": [0.5]}, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        target_search(pipe, ["a"], lambda i, p: 0.0, {"sharpness": [0.5, 2.0]}, progress=False)
    with pytest.raises(ValueError, match="at least one prompt"):
        target_search(pipe, [], lambda i, p: 0.0, {"sharpness": [0.5]}, progress=False)


def test_geneval_metric_on_rendered_scene():
    entries = [{"tag": "single_object", "include": [{"class": "circle", "count": 1}], "prompt": "a photo of a circle"}]
    m = geneval_metric(entries)
    blank = torch.zeros(1, 3, 32, 32)
    assert m(blank, ["a photo of a circle"]) == 0.0
    with pytest.raises(ValueError, match="no GenEval metadata"):
        m(blank, ["something else"])
