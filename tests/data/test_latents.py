"""Latent path: shards gain `{key}.latent.safetensors`, channel stats, dataset in latent mode.

Runs with a stub encoder always, and with a tiny random diffusers AutoencoderKL when diffusers
(the optional `[latent]` extra) is installed.
"""

import json
import sys

import pytest
import torch

from rewardflow.data.datasets import ShardDataset
from rewardflow.data.latents import LATENT_MEMBER, ChannelStats, LatentStats, encode_shards, load_vae, vae_encode
from rewardflow.data.shards import iter_shard, list_shards

from dataset_helpers import make_dataset


def stub(pixels):  # (B,3,8,8) -> (B,4,4,4), channels with distinct scales and offsets
    z = torch.nn.functional.avg_pool2d(pixels, 2)
    return torch.cat([z, z[:, :1] * 3 + 2], 1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("src"), n=40, per=10)


def test_stub_encoder_roundtrip_and_resume(data, tmp_path):
    out = tmp_path / "lat"
    stats = encode_shards(data, out, stub, batch_size=8, vae_name="stub", progress=False)
    assert [p.name for p in list_shards(out)] == [p.name for p in list_shards(data)]
    assert (out / "bins.json").exists() and (out / "00003.parquet").exists()
    s = next(iter_shard(out / "00000.tar"))
    assert {"png", "txt", "json", LATENT_MEMBER} <= set(s.members)
    assert json.loads(s.members["json"])["latent"] == {
        "dtype": "float16",
        "shape": [4, 4, 4],
        "vae": "stub",
        "member": LATENT_MEMBER,
    }
    assert stats.count == 40 and stats.std[3] > 2 * stats.std[0]
    # a killed job resumes: finished shards are reused, the stats come out the same
    (out / "00002.tar").unlink()
    again = encode_shards(data, out, stub, batch_size=8, vae_name="stub", progress=False)
    assert again.count == 40 and again.mean == pytest.approx(stats.mean, abs=1e-3)
    ds = ShardDataset(out, ["a"], batch_size=40, latents=True, infinite=False)
    b = next(iter(ds))
    assert "pixels" not in b and b["latents"].shape == (40, 4, 4, 4)
    per_channel = b["latents"].transpose(0, 1).reshape(4, -1)
    assert per_channel.mean(1).abs().max() < 0.05 and (per_channel.std(1) - 1).abs().max() < 0.05
    src = {
        k: p
        for batch in ShardDataset(data, batch_size=16, infinite=False)
        for k, p in zip(batch["keys"], batch["pixels"])
    }
    want = stub(torch.stack([src[k] for k in b["keys"]])).half().float()
    assert torch.allclose(LatentStats.load(out).denormalize(b["latents"]), want, atol=1e-4)
    mem = next(iter(ShardDataset(out, ["a"], batch_size=8, latents=True, in_memory=True)))
    assert mem["latents"].shape == (8, 4, 4, 4)


def test_channel_stats_match_torch():
    z = torch.randn(50, 3, 5, 5) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1) + 4
    cs = ChannelStats()
    for chunk in z.split(7):
        cs.update(chunk)
    r = cs.result()
    flat = z.transpose(0, 1).reshape(3, -1).double()
    assert r.mean == pytest.approx(flat.mean(1).tolist()) and r.std == pytest.approx(flat.std(1).tolist())


def test_latents_without_stats_is_clear(data):
    with pytest.raises(FileNotFoundError, match="rewardflow latents encode"):
        ShardDataset(data, batch_size=4, latents=True)


def test_missing_diffusers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ImportError, match=r"pip install 'rewardflow\[latent\]'"):
        load_vae("anything")


def test_tiny_autoencoderkl(data, tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=8,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    )
    vae.save_pretrained(tmp_path / "vae")
    vae = load_vae(tmp_path / "vae")
    stats = encode_shards(data, tmp_path / "lat", lambda x: vae_encode(vae, x), vae_name="tiny", progress=False)
    assert len(stats.mean) == 4 and stats.count == 40
    b = next(iter(ShardDataset(tmp_path / "lat", batch_size=4, latents=True)))
    assert b["latents"].shape == (4, 4, 4, 4)
    with pytest.raises(FileNotFoundError, match="allow_download"):
        load_vae("no-such-org/no-such-vae")
    from rewardflow.cli import main

    assert (
        main(
            [
                "latents",
                "encode",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "cli"),
                "--vae",
                str(tmp_path / "vae"),
                "--store-dtype",
                "bfloat16",
            ]
        )
        == 0
    )
    assert LatentStats.load(tmp_path / "cli").mean == pytest.approx(stats.mean, abs=1e-4)
