"""TrainConfig: YAML + overrides, helpful errors for typos / bad values, resume diffs, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardflow.training import TrainConfig, check_resume_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_yaml_and_dotted_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 3e-4\n  betas: [0.9, 0.95]\ndata:\n  mode: single\n  reward_keys: [sharpness]\n")
    cfg = TrainConfig.load(p, ["optim.lr=1e-3", "model.overrides.depth=3", "max_steps=1e4", "compile=true"])
    assert cfg.optim.lr == 1e-3 and cfg.optim.betas == [0.9, 0.95] and cfg.max_steps == 10000
    assert cfg.model.overrides == {"depth": 3} and cfg.compile is True and cfg.data.reward_keys == ["sharpness"]
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "override,needle",
    [
        ("optim.lrr=1", "Did you mean 'optim.lr'? Valid keys in section 'optim': optimizer, lr, betas"),
        ("optimm.lr=1", "Did you mean 'optim'?"),
        ("max_step=5", "Did you mean 'max_steps'?"),
    ],
)
def test_typo_lists_valid_keys_and_suggests(override, needle):
    with pytest.raises(ValueError, match="unknown config key") as err:
        TrainConfig.load(None, [override])
    assert needle in str(err.value)


def test_yaml_typo_is_caught_too(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("ema:\n  decya: 0.99\n")
    with pytest.raises(ValueError, match="'ema.decya'. Did you mean 'ema.decay'"):
        TrainConfig.load(p)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("optim.lr=fast", "expects float"),
        ("max_steps=1.5", "expects int"),
        ("precision=fp8", "precision must be"),
        ("data.mode=miro2", "data.mode must be"),
        ("time.kind=beta", "unknown time distribution"),
        ("text_dropout=2", "text_dropout must be in"),
        ("noequals", "key=value"),
    ],
)
def test_bad_values_are_rejected_with_the_key(override, needle):
    with pytest.raises(ValueError, match=needle):
        TrainConfig.load(None, [override])


def test_resume_diff_names_fields_and_respects_allow_list():
    old = TrainConfig().to_dict()
    new = TrainConfig.load(
        None, ["reward_dropout=0.8", "max_steps=20000", "log_every=1", "out_dir=elsewhere"]
    ).to_dict()
    with pytest.raises(ValueError) as err:
        check_resume_config(old, new)
    msg = str(err.value)
    assert "reward_dropout: checkpoint has 0.0, now 0.8" in msg and "max_steps" in msg
    assert "log_every:" not in msg and "out_dir:" not in msg  # operational settings may change
    assert "--allow-change reward_dropout" in msg
    check_resume_config(old, new, allow=["reward_dropout", "max_steps"])
    check_resume_config(old, new, allow=["*"])


def test_shipped_configs_exist_and_load():
    names = {p.stem for p in CONFIGS}
    assert {"shapes-baseline", "shapes-miro"} <= names
    from rewardflow.rewards import get_reward_class, list_rewards

    # Only the built-in ShapesWorld rewards ship configs; other tests register throwaway rewards.
    builtin = [k for k in list_rewards() if get_reward_class(k).__module__.startswith("rewardflow.shapes.rewards")]
    assert len(builtin) >= 4
    for key in builtin:
        assert f"shapes-{key}" in names, f"no single-reward config for {key}"
    for p in CONFIGS:
        cfg = TrainConfig.load(p)
        if p.stem.startswith("shapes-") and p.stem not in ("shapes-baseline", "shapes-miro"):
            assert cfg.data.mode == "single" and cfg.data.reward_keys == [p.stem[len("shapes-") :]]
