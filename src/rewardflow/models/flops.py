"""Parameter counts and analytic forward FLOPs (for benchmarks and MFU).

FLOPs = 2 * multiply-accumulates of every matmul / convolution: nn.Linear, nn.Conv2d and the two
matmuls inside attention (Q K^T and A V). Norms, activations, softmax, bias adds and elementwise
ops are left out (they are memory-bound and a few percent at most), as is usual for MFU.
Counting runs a forward on the meta device: only shapes are used, nothing is allocated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .attention import SDPA
from .config import DenoiserConfig


def linear_flops(in_features: int, out_features: int, rows: int) -> int:
    """A (rows, in) @ (in, out) product."""
    return 2 * rows * in_features * out_features


def conv2d_flops(
    in_ch: int, out_ch: int, kernel: tuple[int, int], out_hw: tuple[int, int], batch: int, groups: int = 1
) -> int:
    return 2 * batch * out_ch * out_hw[0] * out_hw[1] * (in_ch // groups) * kernel[0] * kernel[1]


def attention_flops(batch: int, heads: int, q_len: int, k_len: int, head_dim: int, v_dim: int | None = None) -> int:
    """Q K^T (Lq x d x Lk) plus A V (Lq x Lk x dv), per head."""
    v_dim = head_dim if v_dim is None else v_dim
    return 2 * batch * heads * q_len * k_len * (head_dim + v_dim)


@dataclass
class FlopReport:
    linear: int = 0
    conv: int = 0
    attention: int = 0
    by_module: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.linear + self.conv + self.attention


def count_module_flops(model: nn.Module, *args, **kwargs) -> FlopReport:
    """Run model(*args, **kwargs) once (under no_grad) and add up FLOPs from shape hooks."""
    report = FlopReport()
    handles = []

    def add(kind: str, name: str, n: int) -> None:
        setattr(report, kind, getattr(report, kind) + n)
        report.by_module[name] = report.by_module.get(name, 0) + n

    def hook_for(name: str, mod: nn.Module):
        def hook(m, inputs, output):
            if isinstance(m, nn.Linear):
                x = inputs[0]
                add("linear", name, linear_flops(m.in_features, m.out_features, x.numel() // x.shape[-1]))
            elif isinstance(m, nn.Conv2d):
                out = output
                batch = out.shape[0] if out.ndim == 4 else 1
                add(
                    "conv",
                    name,
                    conv2d_flops(m.in_channels, m.out_channels, m.kernel_size, tuple(out.shape[-2:]), batch, m.groups),
                )
            elif isinstance(m, SDPA):
                q, k, v = inputs[:3]
                add(
                    "attention",
                    name,
                    attention_flops(q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3]),
                )

        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d, SDPA)):
            handles.append(mod.register_forward_hook(hook_for(name, mod)))
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return report


def _meta_model(config_or_model):
    from .registry import build_model

    if isinstance(config_or_model, DenoiserConfig):
        with torch.device("meta"):
            return build_model(config_or_model)
    return config_or_model


def count_parameters(config_or_model, trainable_only: bool = False) -> int:
    """Parameter count of a model, or of the model a config would build (meta device: no memory)."""
    model = _meta_model(config_or_model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def forward_flops(config_or_model, batch_size: int = 1, text_len: int = 77, detailed: bool = False):
    """Analytic FLOPs of one forward pass with `batch_size` images and `text_len` text tokens.

    Training costs about 3x this (forward + backward); CFG sampling 2x per step.
    """
    model = _meta_model(config_or_model)
    c: DenoiserConfig = model.config
    dev = next(model.parameters()).device  # meta for a config: shapes only
    x = torch.zeros(batch_size, c.in_channels, c.image_size, c.image_size, device=dev)
    t = torch.zeros(batch_size, device=dev)
    text = torch.zeros(batch_size, text_len, c.text_dim, device=dev)
    mask = torch.ones(batch_size, text_len, dtype=torch.bool, device=dev)
    rewards = torch.zeros(batch_size, c.num_rewards, device=dev) if c.num_rewards else None
    report = count_module_flops(model, x, t, text, mask, rewards)
    return report if detailed else report.total
