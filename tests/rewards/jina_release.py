"""A tiny random jina-clip-v2 release in its own layout: config.json (the released structure at
toy sizes, 36 px in patches of 8 so that pixels are left over as 512 / 14 leaves them; the text
sizes go into hf_model_config_kwargs, which the release's loader applies over
jina-embeddings-v3's config), model.safetensors in bf16 under the release's tensor names (LoRA
parametrisations included, non-zero), an XLM-R style unigram tokenizer.json and
preprocessor_config.json."""

from __future__ import annotations

import json

import torch

from rewardflow.rewards.backends.clip_common import CLIP_MEAN, CLIP_STD

WORDS = ["a", "cat", "on", "the", "mat", "red", "dog", "two", "birds", "in", "sky"]
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>"]
VISION = dict(image_size=36, patch_size=8, width=32, layers=2, head_width=16, mlp_ratio=2.6667, pt_hw_seq_len=16)
TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
# jina-clip-v2's own sizes (its config.json; the text ones are jina-embeddings-v3's), for
# benchmarks on random weights of the real shapes
REAL_VISION = dict(
    image_size=512, patch_size=14, width=1024, layers=24, head_width=64, mlp_ratio=2.6667, pt_hw_seq_len=16
)
REAL_TEXT = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
REAL_VOCAB = 250002
TASKS = ["text-matching", "retrieval.query"]  # the default task is not the first adapter
RANK, ALPHA = 4, 8


def vocab() -> list[tuple[str, float]]:
    pieces = [("\u2581" + w, -2.0) for w in WORDS] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz\u2581"]
    return [(t, 0.0) for t in SPECIAL] + pieces + [("<mask>", 0.0)]


def write_tokenizer(d) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizerFast

    v = vocab()
    tok = Tokenizer(models.Unigram(v, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    XLMRobertaTokenizerFast(tokenizer_object=tok, mask_token="<mask>").save_pretrained(str(d))
    return len(v)


def config(n_vocab: int, vision_sizes: dict = VISION, text_sizes: dict = TEXT) -> dict:
    vision = {
        **vision_sizes,
        "embed_dim": vision_sizes["width"],
        "fused_layer_norm": False,
        "intp_freq": True,
        "ls_init_value": None,
        "model_type": "jina_clip_vision",
        "naive_swiglu": True,
        "patch_dropout": 0.1,
        "post_norm": False,
        "proj_type": None,
        "qkv_bias": True,
        "rope_embeddings": True,
        "subln": True,
        "x_attention": True,
    }
    kwargs = {
        **text_sizes,
        "vocab_size": n_vocab,
        "load_trained_adapters": False,
        "lora_adaptations": TASKS,
        "lora_alpha": ALPHA,
        "lora_dropout_p": 0.0,
        "lora_rank": RANK,
        # the release's LoRA class insists on one instruction per adapter
        "task_instructions": {
            "text-matching": "",
            "retrieval.query": "Represent the query for retrieving evidence documents: ",
        },
        "use_flash_attn": True,
    }
    text = {
        "default_instruction_task": None,
        "default_lora_task": "retrieval.query",
        "embed_dim": text_sizes["hidden_size"],
        "hf_model_config_kwargs": kwargs,
        "hf_model_name_or_path": "jinaai/jina-embeddings-v3",
        "model_type": "jina_clip_text",
        "pooler_type": "mean_pooler",
        "proj_bias": False,
        "proj_type": None,
    }
    return {
        "add_projections": False,
        "architectures": ["JinaCLIPModel"],
        "auto_map": {
            "AutoConfig": "jinaai/jina-clip-implementation--configuration_clip.JinaCLIPConfig",
            "AutoModel": "jinaai/jina-clip-implementation--modeling_clip.JinaCLIPModel",
        },
        "logit_scale_init_value": 2.6592,
        "model_type": "jina_clip",
        "projection_dim": text_sizes["hidden_size"],
        "text_config": text,
        "torch_dtype": "bfloat16",
        "truncate_dim": None,
        "vision_config": vision,
    }


def _vision_tensors(g, sizes: dict) -> dict[str, torch.Tensor]:
    w, s, L = sizes["width"], sizes["patch_size"], sizes["layers"]
    grid, hid = sizes["image_size"] // s, int(w * sizes["mlp_ratio"])
    shapes = {"cls_token": (1, 1, w), "pos_embed": (1, grid * grid + 1, w), "patch_embed.proj.weight": (w, 3, s, s)}
    shapes.update({"patch_embed.proj.bias": (w,), "norm.weight": (w,), "norm.bias": (w,)})
    for i in range(L):
        b = f"blocks.{i}."
        for n in ("norm1", "norm2", "attn.inner_attn_ln"):
            shapes.update({f"{b}{n}.weight": (w,), f"{b}{n}.bias": (w,)})
        for n in ("q_proj", "k_proj", "v_proj"):
            shapes[f"{b}attn.{n}.weight"] = (w, w)
        shapes.update({f"{b}attn.q_bias": (w,), f"{b}attn.v_bias": (w,), f"{b}attn.proj.weight": (w, w)})
        shapes.update({f"{b}attn.proj.bias": (w,), f"{b}mlp.ffn_ln.weight": (hid,), f"{b}mlp.ffn_ln.bias": (hid,)})
        for n, shp in (("w1", (hid, w)), ("w2", (hid, w)), ("w3", (w, hid))):
            shapes.update({f"{b}mlp.{n}.weight": shp, f"{b}mlp.{n}.bias": (shp[0],)})
    return {"vision_model." + k: _rand(g, k, shp) for k, shp in shapes.items()}


def _rand(g, name: str, shape) -> torch.Tensor:
    t = torch.randn(shape, generator=g)
    if name.endswith(("norm1.weight", "norm2.weight", "ln.weight", "norm.weight")):
        t = 1.0 + 0.1 * t  # LayerNorm gains near 1, as trained ones are
    scale = 0.3 if shape[-1] <= 128 else shape[-1] ** -0.5  # wide (real-size) layers: keep activations tame
    return (t * scale).to(torch.bfloat16)


def _lora(g, name: str, rows: int, cols: int, embedding: bool) -> dict[str, torch.Tensor]:
    p, n = name + ".parametrizations.weight.", len(TASKS)
    a, b = ((n, rows, RANK), (n, RANK, cols)) if embedding else ((n, RANK, cols), (n, rows, RANK))
    return {
        p + "original": _rand(g, name, (rows, cols)),
        p + "0.lora_A": _rand(g, "a", a),
        p + "0.lora_B": _rand(g, "b", b),
    }


def _text_tensors(g, n_vocab: int, sizes: dict) -> dict[str, torch.Tensor]:
    h, f, P = sizes["hidden_size"], sizes["intermediate_size"], "text_model.transformer.roberta."
    out = _lora(g, P + "embeddings.word_embeddings", n_vocab, h, True)
    out.update(_lora(g, P + "embeddings.token_type_embeddings", 1, h, True))
    out.update({P + "emb_ln.weight": _rand(g, "ln.weight", (h,)), P + "emb_ln.bias": _rand(g, "b", (h,))})
    for i in range(sizes["num_hidden_layers"]):
        b = f"{P}encoder.layers.{i}."
        for name, rows, cols in (
            ("mixer.Wqkv", 3 * h, h),
            ("mixer.out_proj", h, h),
            ("mlp.fc1", f, h),
            ("mlp.fc2", h, f),
        ):
            out.update(_lora(g, b + name, rows, cols, False))
            out[f"{b}{name}.bias"] = _rand(g, "b", (rows,))
        for n in ("norm1", "norm2"):
            out.update({f"{b}{n}.weight": _rand(g, "ln.weight", (h,)), f"{b}{n}.bias": _rand(g, "b", (h,))})
    return out


def write_release(
    d, seed: int = 0, vision: dict = VISION, text: dict = TEXT, vocab_size: int | None = None
) -> dict[str, torch.Tensor]:
    """Write the folder; returns the tensors as stored (bf16). ``vocab_size`` sizes the word
    table (default: the tiny tokenizer's)."""
    from safetensors.torch import save_file

    d.mkdir(parents=True, exist_ok=True)
    n_tokens = write_tokenizer(d)
    n_vocab = vocab_size or n_tokens
    g = torch.Generator().manual_seed(seed)
    sd = {**_vision_tensors(g, vision), **_text_tensors(g, n_vocab, text)}
    sd["logit_scale"] = torch.tensor(2.6592).to(torch.bfloat16)
    save_file(sd, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(config(n_vocab, vision, text), indent=2))
    pre = {"image_processor_type": "JinaCLIPImageProcessor", "interpolation": "bicubic", "resize_mode": "shortest"}
    pre.update({"size": vision["image_size"], "mean": list(CLIP_MEAN), "std": list(CLIP_STD), "fill_color": 0})
    (d / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return sd
