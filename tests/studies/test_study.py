"""The training stage's cache key comes from the TrainConfig a study builds, not from a list."""

import pytest

from rewardflow.studies.config import DemoConfig
from rewardflow.studies.stages import digest
from rewardflow.studies.study import train_config, training_signature
from rewardflow.training.config import flatten


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
        {"train.optim.betas": [0.9, 0.95]},  # any training setting, not only the short names
        {"geneval_per_category": 12},  # moves the curve prompts
        {"sample_batch": 32},  # the curves' network batches
    ],
)
def test_what_training_depends_on_changes_the_key(change):
    assert _key(DemoConfig().replace(**change)) != _key(DemoConfig())


@pytest.mark.parametrize("change", [{"control_images": 12}, {"grid_seeds": 2}, {"sweep_images": 48}])
def test_evaluation_only_settings_keep_the_key(change):
    assert _key(DemoConfig().replace(**change)) == _key(DemoConfig())


def test_every_setting_that_reaches_the_train_config_is_in_the_key(tmp_path):
    """Perturb every numeric setting (nested training ones too): whenever the TrainConfig of a
    study model changes, so does the key."""
    base = DemoConfig()

    def tc(c):
        return train_config(c, tmp_path, tmp_path, "miro", tmp_path).to_dict()

    reaching = []
    for key, v in flatten(base.to_dict()).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        for new in (v + 1, v / 2 + 0.01) if isinstance(v, float) else (v + 1,):
            try:  # the first perturbation the configs accept
                other = base.replace(**{key: new})
                changed = tc(other) != tc(base)
                break
            except ValueError:
                continue
        else:
            continue
        if changed:
            reaching.append(key)
            assert _key(other) != _key(base), key
    assert {"train.max_steps", "train.data.batch_size", "train.optim.lr", "train.text_dropout", "seed"} <= set(reaching)


def test_short_names_are_the_training_settings():
    c = DemoConfig.load(None, ["steps=7", "lr=1e-3", "model_overrides.hidden_size=24"])
    assert (c.train.max_steps, c.train.optim.lr, c.train.model.overrides["hidden_size"]) == (7, 1e-3, 24)
    assert c.train.model.overrides["patch_size"] == 1  # the demo's other overrides stay
    assert DemoConfig.from_dict(c.to_dict()) == c
    assert DemoConfig.from_dict({"steps": 9}).train.optim.lr == DemoConfig().lr  # the rest from the defaults
    with pytest.raises(ValueError, match="Did you mean 'train.optim.lr'"):
        DemoConfig.load(None, ["train.optim.lrr=1"])


def test_busy_cores_sees_another_process_now():
    """The thread choice looks at the CPU now, not at the lagging load average."""
    import subprocess
    import sys
    import time

    from rewardflow.studies.study import busy_cores

    spin = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 5\nwhile time.time() < t: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(0.5) > 0.6
    finally:
        spin.kill()
