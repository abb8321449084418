"""`rewardflow eval rewards`: mean rewards on the shipped prompt sets."""

import json

import pytest

from rewardflow.cli import main


def test_cli_eval_rewards_on_shipped_prompt_sets(pipe, tmp_path):
    """The paper's reward table: PartiPrompts (per Category) and GenEval's prompts (per tag)."""
    from rewardflow.sampling.prompts import load_prompts

    model = str(pipe.save_pretrained(tmp_path / "pipe"))
    args = ["eval", "rewards", "--model", model, "--rewards", "sharpness,cleanliness", "--steps", "1"]
    assert main(args + ["--out", str(tmp_path / "parti"), "--max-prompts", "5", "--no-progress"]) == 0
    res = json.loads((tmp_path / "parti" / "rewards.json").read_text())
    assert res["images"] == 5 and set(res["rewards"]) == {"sharpness", "cleanliness"}
    assert all(0 <= r["mean"] <= 1 and r["sem"] >= 0 for r in res["rewards"].values())
    prompts, entries = load_prompts("parti", 5)
    assert list(res["per_category"]) == list(dict.fromkeys(e["category"] for e in entries))
    # The means are the rewards of the images the pipeline makes for those prompts and seeds.
    from rewardflow.rewards import get_reward

    images = pipe(prompts, seed=0, num_inference_steps=1, output_type="np", progress=False).images
    assert res["rewards"]["sharpness"]["mean"] == pytest.approx(get_reward("sharpness").score(images, prompts).mean())
    assert main(args + ["--out", str(tmp_path / "ge"), "--prompts", "geneval", "--max-prompts", "3"]) == 0
    assert list(json.loads((tmp_path / "ge" / "rewards.json").read_text())["per_category"]) == ["single_object"]
    assert len(load_prompts("geneval")[0]) == 553 and len(load_prompts("parti")[0]) == 1632
    assert main(args + ["--out", str(tmp_path / "x"), "--rewards", "no_such_reward"]) == 1
