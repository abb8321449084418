import numpy as np
import pytest
import torch

from rewardflow.sampling import RewardTargets, custom, high_quality, isolate, pairwise, randn_per_seed

KEYS = ["aesthetic_score", "clip_score", "image_reward_score"]


def test_high_quality_and_tensors():
    rt = high_quality(KEYS)
    pos, neg = rt.tensors(4)
    assert pos.shape == neg.shape == (4, 3) and pos.dtype == torch.float32
    assert torch.all(pos == 1) and torch.all(neg == 0)
    assert rt.keys == tuple(KEYS)
    assert rt.to_dict() == {"positive": dict.fromkeys(KEYS, 1.0), "negative": dict.fromkeys(KEYS, 0.0)}
    assert high_quality([]).tensors(2)[0].shape == (2, 0)  # baseline model without rewards


def test_custom_defaults_and_negative_forms():
    rt = custom(KEYS, {"aesthetic_score": 0.625})
    pos, neg = rt.tensors(2, dtype=torch.float64)
    assert pos[0].tolist() == [0.625, 1.0, 1.0] and neg[1].tolist() == [0.0, 0.0, 0.0]
    assert custom(KEYS, {}, default=0.5, negative=0.25).tensors(1)[1][0].tolist() == [0.25] * 3
    rt = custom(KEYS, {}, negative={"clip_score": 0.5}, negative_default=1.0)
    assert list(rt.negative.values()) == [1.0, 0.5, 1.0]


def test_isolate_and_pairwise():
    pos, neg = isolate(KEYS, "clip_score").tensors(1)
    assert pos[0].tolist() == [1, 1, 1] and neg[0].tolist() == [1, 0, 1]
    pos, neg = pairwise(KEYS, "aesthetic_score", "image_reward_score", 0.25).tensors(1)
    assert pos[0].tolist() == [1, 1, 1] and neg[0].tolist() == [0.25, 1, 0.75]


def test_anchor_holds_the_other_rewards_in_both_branches():
    rt = isolate(KEYS, "clip_score", anchor={"aesthetic_score": 0.25})
    assert list(rt.positive.values()) == [0.25, 1.0, 1.0] and list(rt.negative.values()) == [0.25, 0.0, 1.0]
    rt = isolate(KEYS, "clip_score", anchor={"aesthetic_score": None})  # unspecified in both: no contrast
    assert rt.positive["aesthetic_score"] is None and rt.negative["aesthetic_score"] is None
    rt = pairwise(KEYS, "aesthetic_score", "image_reward_score", 0.25, anchor={"clip_score": 0.5})
    assert list(rt.positive.values()) == [1.0, 0.5, 1.0] and list(rt.negative.values()) == [0.25, 0.5, 0.75]
    with pytest.raises(ValueError, match=r"anchor names \['clip_score'\].*sets itself"):
        isolate(KEYS, "clip_score", anchor={"clip_score": 0.5})
    with pytest.raises(ValueError, match=r"unknown reward key\(s\) \['hps'\]"):
        isolate(KEYS, "clip_score", anchor={"hps": 0.5})
    with pytest.raises(ValueError, match=r"'aesthetic_score'.*\[0, 1\]"):
        pairwise(KEYS, "clip_score", "image_reward_score", 0.5, anchor={"aesthetic_score": 2.0})


def test_unknown_keys_list_valid_keys():
    for call in (
        lambda: custom(KEYS, {"hps": 1.0}),
        lambda: custom(KEYS, {}, negative={"hps": 0.0}),
        lambda: isolate(KEYS, "hps"),
        lambda: pairwise(KEYS, "hps", "clip_score", 0.5),
    ):
        with pytest.raises(ValueError, match=r"unknown reward key\(s\) \['hps'\].*aesthetic_score.*clip_score"):
            call()


def test_out_of_range_values_name_key_and_value():
    with pytest.raises(ValueError, match=r"'clip_score'.*\[0, 1\].*1\.5"):
        custom(KEYS, {"clip_score": 1.5})
    with pytest.raises(ValueError, match=r"'aesthetic_score'.*-0\.1"):
        custom(KEYS, {}, negative={"aesthetic_score": -0.1})
    with pytest.raises(ValueError, match="'clip_score'.*nan"):
        custom(KEYS, {"clip_score": float("nan")})
    # A string or a bool is a caller's bug, not a number to convert.
    with pytest.raises(ValueError, match=r"'clip_score'.*'0\.5' of type str"):
        custom(KEYS, {"clip_score": "0.5"})
    with pytest.raises(ValueError, match=r"'clip_score'.*True of type bool"):
        custom(KEYS, {"clip_score": True})
    assert custom(KEYS, {"clip_score": np.float32(0.5)}).positive["clip_score"] == 0.5
    with pytest.raises(ValueError, match="pairwise t"):
        pairwise(KEYS, "aesthetic_score", "clip_score", 2.0)
    with pytest.raises(ValueError, match="two different"):
        pairwise(KEYS, "clip_score", "clip_score", 0.5)
    with pytest.raises(ValueError, match="same keys"):
        RewardTargets({"a": 1.0}, {"b": 0.0})
    with pytest.raises(ValueError, match="unique"):
        high_quality(["a", "a"])


def test_targets_copy_inputs():
    pos = {"a": 1.0}
    rt = RewardTargets(pos, {"a": 0.0})
    pos["a"] = 5.0
    assert rt.positive["a"] == 1.0


def test_noise_independent_of_batch_size_and_position():
    alone = randn_per_seed([123], (3, 4, 4))
    batch = randn_per_seed([0, 1, 2, 3, 4, 123, 6, 7], (3, 4, 4))
    assert alone.shape == (1, 3, 4, 4) and batch.shape == (8, 3, 4, 4)
    assert torch.equal(alone[0], batch[5])
    assert not torch.equal(batch[0], batch[1])
    assert torch.equal(randn_per_seed([7], (2,), dtype=torch.float64)[0], randn_per_seed([7], (2,))[0].double())
    with pytest.raises(ValueError, match="empty"):
        randn_per_seed([], (2,))
    with pytest.raises(ValueError, match="ints"):
        randn_per_seed([1.5], (2,))


def test_unspecified_targets_give_masks_and_carry_into_the_negative():
    rt = custom(KEYS, {"clip_score": None})
    assert rt.unspecified == ("clip_score",)
    assert rt.positive["clip_score"] is None and rt.negative["clip_score"] is None  # no contrast by default
    pos, neg = rt.tensors(2)
    assert pos[0].tolist() == [1.0, 0.0, 1.0] and neg[0].tolist() == [0.0, 0.0, 0.0]
    dp, dn = rt.drop_masks(2)
    assert dp.dtype == torch.bool and dp.shape == (2, 3) and dp[1].tolist() == [False, True, False]
    assert torch.equal(dp, dn)
    # An explicit negative keeps its contrast; a branch without None has no mask at all.
    rt = custom(KEYS, {"clip_score": None}, negative={"clip_score": 0.0})
    assert rt.drop_masks(1)[1] is None and rt.drop_masks(1)[0][0].tolist() == [False, True, False]
    assert high_quality(KEYS).drop_masks(3) == (None, None) and high_quality(KEYS).unspecified == ()
    assert custom(KEYS, {}, default=None).unspecified == tuple(KEYS)
    assert rt.to_dict()["positive"]["clip_score"] is None
