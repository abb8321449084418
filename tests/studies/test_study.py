"""The training stage's cache key comes from the TrainConfig a study builds, not from a list."""

import dataclasses

import pytest

from rewardflow.studies.config import DemoConfig
from rewardflow.studies.stages import digest
from rewardflow.studies.study import train_config, training_signature


def _key(cfg: DemoConfig) -> str:
    return digest(training_signature(cfg))


@pytest.mark.parametrize(
    "change",
    [
        {"lr": 1e-3},
        {"model_overrides": {"hidden_size": 24}},
        {"text_dropout_rewards": "keep"},
        {"ema_decay": 0.99},
        {"warmup_steps": 50},
        {"geneval_per_category": 12},  # moves the curve prompts
        {"sample_batch": 32},  # the curves' network batches
    ],
)
def test_what_training_depends_on_changes_the_key(change):
    assert _key(dataclasses.replace(DemoConfig(), **change)) != _key(DemoConfig())


@pytest.mark.parametrize("change", [{"control_images": 12}, {"grid_seeds": 2}, {"sweep_images": 48}])
def test_evaluation_only_settings_keep_the_key(change):
    assert _key(dataclasses.replace(DemoConfig(), **change)) == _key(DemoConfig())


def test_every_field_that_reaches_the_train_config_is_in_the_key(tmp_path):
    """Perturb every DemoConfig field in turn: whenever the TrainConfig changes, so does the key."""
    base = DemoConfig()

    def tc(c):
        return train_config(c, tmp_path, tmp_path, "miro", tmp_path).to_dict()

    reaching = []
    for f in dataclasses.fields(DemoConfig):
        v = getattr(base, f.name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        for new in (v + 1, v / 2 + 0.01) if isinstance(v, float) else (v + 1,):
            try:  # the first perturbation both configs accept
                other = dataclasses.replace(base, **{f.name: new})
                changed = tc(other) != tc(base)
                break
            except ValueError:
                continue
        else:
            continue
        if changed:
            reaching.append(f.name)
            assert _key(other) != _key(base), f.name
    assert {"steps", "batch_size", "lr", "text_dropout", "seed"} <= set(reaching)
