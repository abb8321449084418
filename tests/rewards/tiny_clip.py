"""Tiny CLIP-family reward models in the releases' file formats (a CLIP BPE tokenizer built in
code, a random transformers CLIPModel, the aesthetic head's state dict), shared by the backend
tests and benchmarks/reward_backends_speed.py."""

from __future__ import annotations

import string

import torch


def tokenizer_dir(d):
    from transformers import CLIPTokenizer

    vocab = {c: i for i, c in enumerate(string.ascii_lowercase)}
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate(string.ascii_lowercase)})
    merges = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    # CLIP's vocab ends with start/end of text: end-of-text is the largest id (open_clip pools there)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    CLIPTokenizer(vocab=vocab, merges=merges).save_pretrained(str(d))
    from transformers import CLIPImageProcessor

    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(str(d))
    return len(vocab)


def tiny_clip(vocab, act="gelu", seed=0):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            hidden_act=act,
            bos_token_id=vocab - 2,
            eos_token_id=vocab - 1,
            pad_token_id=vocab - 1,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            hidden_act=act,
        ),
        projection_dim=16,
    )
    m = CLIPModel(cfg).eval()
    with torch.no_grad():  # random init gives near-identical embeddings; spread them out
        for p in m.parameters():
            if p.ndim >= 1:
                p.add_(0.05 * torch.randn_like(p))
        m.logit_scale.fill_(2.5)
    return m


def mlp_state_dict(in_dim, seed=1):
    g = torch.Generator().manual_seed(seed)
    dims = [in_dim, 32, 16, 8, 4, 1]
    sd = {}
    # the public head's Sequential: Linear, Dropout, Linear, Dropout, Linear, Dropout, Linear, Linear
    for idx, (a, b) in zip([0, 2, 4, 6, 7], zip(dims[:-1], dims[1:])):
        sd[f"layers.{idx}.weight"] = torch.randn(b, a, generator=g) / a**0.5
        sd[f"layers.{idx}.bias"] = torch.randn(b, generator=g)
    return sd
