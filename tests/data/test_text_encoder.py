"""TextEncoder: the offline MiniLM default, tiny T5 / CLIP-text / BERT through the same loader, cache."""

import pytest
import torch

from rewardflow.data.text import DEFAULT_MODEL, TextEncoder, resolve_model

CAPS = ["a red circle left of a blue square", "two green triangles", "a big yellow star"]


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder(max_length=16)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertModel,
        CLIPTextConfig,
        CLIPTextModel,
        T5Config,
        T5EncoderModel,
    )

    tok = AutoTokenizer.from_pretrained(resolve_model(None)[1], local_files_only=True)
    v = tok.vocab_size
    torch.manual_seed(0)
    models = {
        "t5": T5EncoderModel(T5Config(vocab_size=v, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)),
        "clip": CLIPTextModel(
            CLIPTextConfig(
                vocab_size=v,
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                max_position_embeddings=40,
            )
        ),
        "bert": BertModel(
            BertConfig(
                vocab_size=v,
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                max_position_embeddings=40,
            )
        ),
    }
    dirs = {}
    for name, model in models.items():
        d = tmp_path_factory.mktemp(name)
        model.save_pretrained(d)
        tok.save_pretrained(d)
        dirs[name] = d
    return dirs


def test_default_minilm_offline(minilm):
    assert minilm.model_id == DEFAULT_MODEL and minilm.dim == 384
    text, mask = minilm.encode(CAPS)
    assert text.shape == (3, 16, 384) and text.dtype == torch.float32 and mask.dtype == torch.bool
    lengths = minilm.tokenizer(CAPS, truncation=True, max_length=16)["input_ids"]
    assert mask.sum(1).tolist() == [len(x) for x in lengths]
    assert torch.all(text[~mask] == 0) and torch.all(text[mask].abs().sum(-1) > 0)
    again, _ = minilm.encode(list(reversed(CAPS)))
    assert torch.equal(again, text.flip(0))  # cached and independent of batch order
    assert len(minilm) >= 3
    long_text, long_mask = minilm.encode(["word " * 100])
    assert long_mask.sum() == 16  # truncated to max_length


@pytest.mark.parametrize("kind,cls", [("t5", "T5EncoderModel"), ("clip", "CLIPTextModel"), ("bert", "BertModel")])
def test_tiny_encoders_same_code_path(tiny_dirs, kind, cls):
    enc = TextEncoder(tiny_dirs[kind], max_length=12)
    assert type(enc.model).__name__ == cls and enc.dim == 16
    assert enc.model_id == str(tiny_dirs[kind].resolve())
    text, mask = enc.encode(CAPS)
    assert text.shape == (3, 12, 16) and mask.any(1).all()
    assert not any(p.requires_grad for p in enc.model.parameters())


def test_disk_cache_roundtrip_and_guard(tiny_dirs, tmp_path, monkeypatch):
    path = tmp_path / "cache.safetensors"
    enc = TextEncoder(tiny_dirs["bert"], max_length=12, cache_dtype="bfloat16", cache_path=path)
    assert enc.warm(CAPS) == 3 and enc.warm(CAPS) == 0
    text, mask = enc.encode(CAPS)
    assert path.exists()  # warm() saved it
    again = TextEncoder(tiny_dirs["bert"], max_length=12, cache_dtype="bfloat16", cache_path=path)
    monkeypatch.setattr(again, "_encode_batch", lambda caps: pytest.fail("cache miss"))
    t2, m2 = again.encode(CAPS)
    assert torch.equal(t2, text) and torch.equal(m2, mask) and len(again) == 3
    assert again.tokens(CAPS[0]).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="max_length"):
        TextEncoder(tiny_dirs["bert"], max_length=8, cache_dtype="bfloat16", cache_path=path)


def test_errors(tiny_dirs):
    with pytest.raises(FileNotFoundError, match="allow_download"):
        TextEncoder("no-such-org/no-such-text-encoder")
    with pytest.raises(ValueError, match="positions"):
        TextEncoder(tiny_dirs["clip"], max_length=100)
    with pytest.raises(ValueError, match="dtype"):
        TextEncoder(tiny_dirs["bert"], cache_dtype="float8")
