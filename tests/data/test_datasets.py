"""ShardDataset: batch contract, rank/worker partition, seeded order, exact resume, errors."""

import itertools
import json

import numpy as np
import pytest
import torch

from rewardflow.data.binning import RewardBins
from rewardflow.data.datasets import ShardDataset

from dataset_helpers import PER, N, make_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("shards"))


def keys_of(batches):
    return [k for b in batches for k in b["keys"]]


def take(ds, n):
    return list(itertools.islice(iter(ds), n))


def test_batch_contract_and_reward_order(data):
    ds = ShardDataset(data, ["b", "a"], batch_size=8, seed=3)
    b = next(iter(ds))
    assert b["pixels"].shape == (8, 3, 8, 8) and b["pixels"].dtype == torch.float32
    assert b["pixels"].min() >= -1 and b["pixels"].max() <= 1
    assert b["rewards"].shape == (8, 2) and b["rewards"].dtype == torch.float32
    bins = RewardBins.load(data / "bins.json")
    raw = {r: [float(int(k) * (1 + len(r)) % 17) for k in b["keys"]] for r in "abc"}
    want = bins.transform(raw)[:, [bins.keys.index("b"), bins.keys.index("a")]]
    assert np.array_equal(b["rewards"].numpy(), want)
    assert len(b["keys"]) == len(b["captions"]) == 8 and "text" not in b
    assert "rewards" not in next(iter(ShardDataset(data, batch_size=4)))  # baseline: no scores needed


def test_text_encoder_hook(data):
    class Fake:
        def encode(self, captions):
            return torch.ones(len(captions), 5, 3), torch.ones(len(captions), 5, dtype=torch.bool)

    for mem in (False, True):
        b = next(iter(ShardDataset(data, batch_size=4, text_encoder=Fake(), in_memory=mem)))
        assert b["text"].shape == (4, 5, 3) and b["text_mask"].dtype == torch.bool


def test_order_depends_on_seed_and_epoch_only(data):
    a = keys_of(take(ShardDataset(data, batch_size=8, seed=1), 15))
    assert a == keys_of(take(ShardDataset(data, batch_size=8, seed=1), 15))
    assert sorted(a) == sorted(f"{i:06d}" for i in range(N))  # first epoch: each sample once
    assert a != keys_of(take(ShardDataset(data, batch_size=8, seed=2), 15))
    assert a != keys_of(take(ShardDataset(data, batch_size=8, seed=1, epoch=1), 15))


@pytest.mark.parametrize(
    "mode", [dict(), dict(num_workers=2), dict(in_memory=True), dict(world_size=2, rank=1, shuffle_buffer=7)]
)
def test_resume_is_exact(data, mode):
    straight = take(ShardDataset(data, ["a"], batch_size=7, seed=5, **mode), 40)  # > 2 epochs
    first = ShardDataset(data, ["a"], batch_size=7, seed=5, **mode)
    head = take(first, 13)
    state = json.loads(json.dumps(first.state_dict()))  # must survive a JSON round-trip
    resumed = ShardDataset(data, ["a"], batch_size=7, seed=5, **mode)
    resumed.load_state_dict(state)
    tail = take(resumed, 27)
    for x, y in zip(straight, head + tail):
        assert x["keys"] == y["keys"]
        assert torch.equal(x["pixels"], y["pixels"]) and torch.equal(x["rewards"], y["rewards"])


def test_resume_refuses_other_layout(data):
    state = ShardDataset(data, batch_size=8, seed=1).state_dict()
    other = ShardDataset(data, batch_size=8, seed=2)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(state)
    with pytest.warns(UserWarning):
        other.load_state_dict(state, strict=False)


@pytest.mark.parametrize("world,workers,per", [(2, 0, PER), (2, 2, PER), (3, 2, 60)])
def test_finite_partition_covers_each_sample_once(tmp_path, data, world, workers, per):
    d = data if per == PER else make_dataset(tmp_path, per=per)  # (3, 2, 60): 2 shards < 6 slots
    seen = []
    for rank in range(world):
        ds = ShardDataset(d, batch_size=8, seed=0, infinite=False, rank=rank, world_size=world, num_workers=workers)
        once = keys_of(list(ds))
        assert once == keys_of(list(ds))  # rewinds for the next eval pass
        seen += once
    assert sorted(seen) == sorted(f"{i:06d}" for i in range(N))


def test_in_memory_matches_streaming_content(data):
    mem = {
        k: (p, r)
        for b in ShardDataset(data, ["c"], batch_size=16, infinite=False, in_memory=True)
        for k, p, r in zip(b["keys"], b["pixels"], b["rewards"])
    }
    for b in ShardDataset(data, ["c"], batch_size=16, infinite=False):
        for k, p, r in zip(b["keys"], b["pixels"], b["rewards"]):
            assert torch.equal(mem[k][0], p) and torch.equal(mem[k][1], r)
    assert len(mem) == N


def test_user_dataloader_wrapping_works(data):
    ds = ShardDataset(data, batch_size=8, infinite=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    assert sorted(keys_of(loader)) == sorted(f"{i:06d}" for i in range(N))


def test_missing_inputs_have_clear_errors(tmp_path, data):
    for bins in (None, _bins_with(tmp_path, "zzz")):  # scores are checked before the bins
        with pytest.raises(ValueError, match=r"00000\.tar lack reward\(s\) \['zzz'\].*rewardflow score"):
            ShardDataset(data, ["a", "zzz"], bins_path=bins)
    d = make_dataset(tmp_path / "nobins", n=10, per=5, bins=False)
    with pytest.raises(FileNotFoundError, match="rewardflow bins fit"):
        ShardDataset(d, ["a"])
    RewardBins.fit({"a": [0.0, 1.0]}, num_bins=2).save(d / "bins.json")
    with pytest.raises(ValueError, match="rewardflow bins fit"):
        ShardDataset(d, ["b"], bins_path=d / "bins.json")
    (d / "00001.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="rewardflow score"):
        ShardDataset(d, ["a"])
    with pytest.raises(FileNotFoundError, match="no .tar shards"):
        ShardDataset(tmp_path, [])


def _bins_with(tmp_path, extra):
    path = tmp_path / "bins_extra.json"
    RewardBins.fit({"a": [0.0, 1.0], extra: [0.0, 1.0]}, num_bins=2).save(path)
    return path


def test_in_memory_ranks_split_the_global_batch(data):
    # 2 ranks x batch 6 == 1 rank x batch 12, batch by batch, across epoch boundaries (N=120)
    one = take(ShardDataset(data, batch_size=12, seed=4, in_memory=True), 25)
    ranks = [take(ShardDataset(data, batch_size=6, seed=4, in_memory=True, rank=r, world_size=2), 25) for r in (0, 1)]
    for j in range(25):
        assert sorted(one[j]["keys"]) == sorted(ranks[0][j]["keys"] + ranks[1][j]["keys"])
    odd = ShardDataset(data, batch_size=7, seed=4, in_memory=True, rank=1, world_size=3)
    take(odd, 9)
    resumed = ShardDataset(data, batch_size=7, seed=4, in_memory=True, rank=1, world_size=3)
    resumed.load_state_dict(odd.state_dict())
    assert (
        keys_of(take(resumed, 20))
        == keys_of(take(ShardDataset(data, batch_size=7, seed=4, in_memory=True, rank=1, world_size=3), 29))[9 * 7 :]
    )


def test_samples_the_scorer_skipped_are_left_out(tmp_path):
    d = make_dataset(tmp_path, n=20, per=10)
    (d / "_skipped.json").write_text(json.dumps({"00001.tar": [{"key": "000013", "reason": "corrupt"}]}))
    for mem in (False, True):
        keys = keys_of(ShardDataset(d, ["a"], batch_size=4, infinite=False, in_memory=mem))
        assert sorted(keys) == [f"{i:06d}" for i in range(20) if i != 13]
