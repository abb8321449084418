from types import SimpleNamespace

import pytest
import torch

from rewardflow.sampling.selection import best_of_n, candidate_seeds


class SeedPipe:
    """Stand-in pipeline: image of seed s is the constant s / 100 (so rewards see the seed)."""

    reward_keys = ("a",)
    bins = None

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, seed, output_type, batch_size, progress, **kw):
        self.calls.append((list(prompts), list(seed), kw))
        imgs = torch.stack([torch.full((3, 4, 4), (s % 200) / 100 - 1) for s in seed])
        return SimpleNamespace(images=imgs, reward_targets={"a": 1.0})


class MeanReward:
    def __init__(self, sign=1.0):
        self.sign = sign

    def score(self, images, captions):
        return self.sign * images.mean(dim=(1, 2, 3))


def test_candidate_seeds_nested_and_distinct():
    s4, s8 = candidate_seeds(3, 4, seed=10), candidate_seeds(3, 8, seed=10)
    assert all(a == b[:4] for a, b in zip(s4, s8))
    flat = [x for row in s8 for x in row]
    assert len(set(flat)) == len(flat)
    assert [row[0] for row in s8] == [10, 11, 12]  # best-of-1 == pipe(prompts, seed=10)


def test_selects_argmax_and_reports_all_scores():
    p = SeedPipe()
    res = best_of_n(p, ["x", "y"], 4, "m", seed=0, rewards={"m": MeanReward()}, output_type="pt", guidance_scale=2.0)
    assert p.calls[0][2] == {"guidance_scale": 2.0}
    assert res.candidate_seeds == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert res.selected_index == [3, 3] and res.seeds == [6, 7]
    assert res.scores.shape == (2, 4) and set(res.reward_scores) == {"m"}
    torch.testing.assert_close(res.selected_scores, res.scores.max(1).values)
    torch.testing.assert_close(res.images[:, 0, 0, 0], torch.tensor([0.06 - 1, 0.07 - 1]))
    neg = best_of_n(SeedPipe(), "x", 4, {"m": -1.0}, rewards={"m": MeanReward()}, output_type="pt")
    assert neg.selected_index == [0]
    call = best_of_n(SeedPipe(), "x", 3, lambda im, pr: -im.mean(dim=(1, 2, 3)), output_type="pt", keep_candidates=True)
    assert call.selected_index == [0] and call.candidates.shape == (1, 3, 3, 4, 4)


def test_weighted_sum_normalisation():
    rewards = {"m": MeanReward(), "big": MeanReward(-1000.0)}
    raw = best_of_n(SeedPipe(), "x", 5, {"m": 1.0, "big": 1.0}, rewards=rewards, output_type="pt")
    assert raw.selected_index == [0]  # the big-scale reward dominates a raw sum
    z = best_of_n(SeedPipe(), "x", 5, {"m": 2.0, "big": 1.0}, rewards=rewards, normalize="zscore", output_type="pt")
    assert z.selected_index == [4]  # after per-reward z-scores the weights decide
    with pytest.raises(ValueError, match="bins"):
        best_of_n(SeedPipe(), "x", 2, {"m": 1.0}, rewards=rewards, normalize="bins", output_type="pt")


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        best_of_n(SeedPipe(), "x", 2, "nope")
    with pytest.raises(ValueError, match="n must be"):
        best_of_n(SeedPipe(), "x", 0, "m", rewards={"m": MeanReward()})
    with pytest.raises(ValueError, match="at least one prompt"):
        best_of_n(SeedPipe(), [], 2, "m", rewards={"m": MeanReward()})
    with pytest.raises(ValueError, match="normalize"):
        best_of_n(SeedPipe(), "x", 2, "m", normalize="softmax", rewards={"m": MeanReward()})


def test_best_of_n_non_decreasing_in_n_with_real_pipeline_and_reward(pipe):
    prompts = ["a red circle", "two blue squares"]
    kw = dict(
        seed=0, num_inference_steps=2, guidance_scale=2.0, batch_size=len(prompts), progress=False, output_type="pt"
    )
    means, prev = [], None
    for n in (1, 2, 4, 8, 16):
        res = best_of_n(pipe, prompts, n, "colorfulness", **kw)
        if prev is not None:  # candidates for N are exactly the first N of 2N
            assert torch.equal(res.scores[:, : prev.scores.shape[1]], prev.scores)
        means.append(float(res.selected_scores.mean()))
        prev = res
    assert all(b >= a for a, b in zip(means, means[1:])), means
    assert means[-1] > means[0]
    one = best_of_n(pipe, prompts, 1, {"sharpness": 1.0, "colorfulness": 0.5}, normalize="bins", **kw)
    ref = pipe(prompts, seed=0, num_inference_steps=2, guidance_scale=2.0, output_type="pt", progress=False)
    assert torch.equal(one.images, ref.images)
