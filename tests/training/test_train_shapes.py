"""The real pipeline on a tiny ShapesWorld: shards + scores + bins -> MIRO training with reward
evaluation and sample grids in the log, a pipeline-loadable checkpoint, and clear data errors."""

from __future__ import annotations

import pytest

from rewardflow.training import TrainConfig, Trainer, latest_checkpoint, read_jsonl

REWARDS = ["sharpness", "cleanliness", "colorfulness"]


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    from rewardflow.data.binning import RewardBins
    from rewardflow.rewards.scoring import read_scores, score_dataset
    from rewardflow.shapes import ShapesConfig, generate_dataset

    d = tmp_path_factory.mktemp("shapes")
    generate_dataset(ShapesConfig(), 48, d, seed=0, shard_size=24, progress=False)
    score_dataset(d, REWARDS, progress=False)
    RewardBins.fit(read_scores(d, REWARDS), num_bins=8).save(d / "bins.json")
    return d


def cfg(shapes_dir, out, *extra):
    return TrainConfig.load(
        None,
        [
            f"data.path={shapes_dir}",
            f"out_dir={out}",
            "model.preset=unet-tiny",
            "data.in_memory=true",
            "data.workers=0",
            "data.batch_size=8",
            "max_steps=2",
            "progress=false",
            "tensorboard=false",
            "log_every=1",
            "checkpoint.every=0",
            *extra,
        ],
    )


@pytest.mark.slow  # loads the real MiniLM text encoder (most of the time)
def test_miro_run_logs_reward_curve_grids_and_ships_bins(shapes_dir, tmp_path):
    from rewardflow.data.binning import RewardBins
    from rewardflow.models import load_model

    c = cfg(
        shapes_dir,
        tmp_path,
        "data.mode=miro",
        "eval.every=2",
        "eval.num_prompts=4",
        "eval.num_steps=2",
        "eval.batch_size=4",
        "sample.every=2",
        "sample.num_steps=2",
        "sample.prompts=[a photo of a red circle]",
    )
    tr = Trainer(c)
    assert tr.reward_keys == REWARDS  # miro with no keys given: every key in bins.json
    tr.train()
    evals = read_jsonl(tmp_path / "log.jsonl", "eval")
    assert [e["step"] for e in evals] == [0, 2]  # the curve starts before training
    assert all(isinstance(e[f"reward/{k}"], float) for e in evals for k in REWARDS)
    assert (tmp_path / "samples" / "step_0000002.png").is_file()
    ck = latest_checkpoint(tmp_path)
    # What RewardFlowPipeline.from_checkpoint reads: the EMA denoiser and the run's bins.
    assert load_model(ck / "model").config.reward_keys == tuple(REWARDS)
    assert RewardBins.load(ck / "bins.json").keys == REWARDS
    _checkpoint_is_a_pipeline_folder(ck)


def _checkpoint_is_a_pipeline_folder(ck):
    """from_pretrained reads a checkpoint as it is, and samples what the older route through the
    training config gives (the pipeline files moved away to force it)."""
    import shutil

    import torch

    from rewardflow.sampling.pipeline import RewardFlowPipeline

    def images(pipe):
        return pipe(["a red circle", "two blue squares"], seed=3, num_inference_steps=2, output_type="pt").images

    direct = RewardFlowPipeline.from_pretrained(ck)
    assert direct.config["run_config"]["data"]["mode"] == "miro" and direct.bins.keys == REWARDS
    old = ck.parent / "old_style"
    shutil.copytree(ck, old)
    (old / "pipeline_config.json").unlink()
    (old / "text_encoder.json").unlink()
    legacy = RewardFlowPipeline.from_checkpoint(old)
    assert direct.config == legacy.config and direct.bins == legacy.bins
    assert torch.equal(images(direct), images(legacy))


def test_single_reward_checkpoint_ships_only_its_bins(shapes_dir, tmp_path):
    from rewardflow.data.binning import RewardBins

    tr = Trainer(cfg(shapes_dir, tmp_path, "data.mode=single", "data.reward_keys=[sharpness]", "max_steps=1"))
    tr.train()
    assert tr.raw_model.config.reward_keys == ("sharpness",)
    assert RewardBins.load(latest_checkpoint(tmp_path) / "bins.json").keys == ["sharpness"]


def test_missing_reward_scores_name_the_reward(shapes_dir, tmp_path):
    with pytest.raises(ValueError, match="aesthetic_score"):
        Trainer(cfg(shapes_dir, tmp_path, "data.mode=single", "data.reward_keys=[aesthetic_score]"))


def test_rin_learns_shapesworld_and_its_checkpoint_samples(shapes_dir, tmp_path):
    """The RIN backbone (with latent self-conditioning) through the same trainer as DiT/U-Net."""
    import torch

    from rewardflow.sampling.pipeline import RewardFlowPipeline

    c = cfg(shapes_dir, tmp_path, "model.preset=rin-tiny", "data.mode=miro", "max_steps=60", "optim.lr=1e-2")
    tr = Trainer(c)
    assert tr.raw_model.carries_latents and tr.raw_model.config.rin_self_cond == 0.9
    tr.train()
    losses = [r["loss"] for r in read_jsonl(tmp_path / "log.jsonl", "train")]
    assert len(losses) == 60
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    assert last < 0.7 * first, (first, last)
    pipe = RewardFlowPipeline.from_pretrained(latest_checkpoint(tmp_path))
    img = pipe("a red circle", seed=1, num_inference_steps=3, output_type="pt", progress=False).images
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
