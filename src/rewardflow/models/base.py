"""DenoiserModel: what every backbone shares (input checks, conditioning, null text, save/load)."""

from __future__ import annotations

import os

import torch
from torch import nn

from .config import DenoiserConfig
from .embeddings import ConditionEncoder

# Rewards are bin / (B - 1); anything beyond float rounding outside [0, 1] is a caller bug
# (raw scores or bin indices passed instead of normalised values).
REWARD_EPS = 1e-4


class DenoiserModel(nn.Module):
    """Base class. Subclasses set `backbone_name` and implement `backbone_forward`.

    Contract: model(x_t, t, text, text_mask, rewards=None, reward_drop=None) -> v (shape of x_t).
    """

    backbone_name: str = ""

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        if config.backbone != self.backbone_name:
            raise ValueError(f"{type(self).__name__} needs backbone={self.backbone_name!r}, got {config.backbone!r}")
        self.config = config
        self.cond = self.build_condition(config)
        # Checks cost a device sync (reward range); trainers may switch them off once data is trusted.
        self.validate_inputs = True

    def build_condition(self, config: DenoiserConfig) -> nn.Module:
        """The conditioning module (it must hold ``null_text`` (L0, D_text)); DiT and U-Net share one."""
        return ConditionEncoder(config)

    # --- contract -------------------------------------------------------------------------
    def backbone_forward(self, x: torch.Tensor, cond: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor):
        raise NotImplementedError

    def forward(self, x_t, t, text, text_mask, rewards=None, reward_drop=None):
        if t.ndim == 0:  # a scalar time for the whole batch (samplers)
            t = t.expand(x_t.shape[0])
        if self.validate_inputs and not torch.compiler.is_compiling():
            self.check_inputs(x_t, t, text, text_mask, rewards, reward_drop)
        cond, ctx, ctx_mask = self.cond(t, text, text_mask, rewards, reward_drop)
        v = self.backbone_forward(x_t, cond, ctx, ctx_mask)
        return v.to(x_t.dtype)

    def check_inputs(self, x_t, t, text, text_mask, rewards, reward_drop) -> None:
        c = self.config
        want = (c.in_channels, c.image_size, c.image_size)
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != want:
            raise ValueError(f"x_t must have shape (B, {want[0]}, {want[1]}, {want[2]}), got {tuple(x_t.shape)}")
        b = x_t.shape[0]
        if tuple(t.shape) != (b,):
            raise ValueError(f"t must have shape ({b},) (one time per image), got {tuple(t.shape)}")
        if text.ndim != 3 or text.shape[0] != b:
            raise ValueError(f"text must have shape ({b}, L, {c.text_dim}), got {tuple(text.shape)}")
        if text.shape[2] != c.text_dim:
            raise ValueError(
                f"text embedding dim is {text.shape[2]} but the model expects text_dim={c.text_dim} "
                "(was it trained with a different text encoder?)"
            )
        if tuple(text_mask.shape) != tuple(text.shape[:2]) or text_mask.dtype != torch.bool:
            raise ValueError(
                f"text_mask must be a bool tensor of shape {tuple(text.shape[:2])}, "
                f"got {text_mask.dtype} {tuple(text_mask.shape)}"
            )
        keys = list(c.reward_keys)
        if c.num_rewards == 0:
            if rewards is not None or reward_drop is not None:
                raise ValueError("this is a baseline model (num_rewards=0): pass rewards=None and reward_drop=None")
            return
        if rewards is None:
            raise ValueError(f"model is conditioned on {c.num_rewards} rewards {keys}: rewards (B, N) is required")
        if rewards.ndim != 2 or rewards.shape[0] != b or rewards.shape[1] != c.num_rewards:
            raise ValueError(
                f"rewards must have shape ({b}, {c.num_rewards}) with columns in the order {keys}, "
                f"got {tuple(rewards.shape)}"
            )
        if reward_drop is not None:
            if not c.reward_null:
                raise ValueError("reward_drop given but the model has no null reward tokens (config.reward_null=False)")
            if tuple(reward_drop.shape) != tuple(rewards.shape) or reward_drop.dtype != torch.bool:
                raise ValueError(
                    f"reward_drop must be a bool tensor of shape {tuple(rewards.shape)}, "
                    f"got {reward_drop.dtype} {tuple(reward_drop.shape)}"
                )
        if rewards.device.type != "meta":
            # NaN fails both comparisons, so it is caught too.
            ok = (rewards >= -REWARD_EPS) & (rewards <= 1 + REWARD_EPS)
            if not bool(ok.all()):
                bad = rewards[~ok]
                raise ValueError(
                    f"reward values must lie in [0, 1] (bin / (B - 1), columns {keys}); "
                    f"got {bad.numel()} value(s) outside, e.g. {bad[:4].tolist()}"
                )

    # --- null text / text dropout ------------------------------------------------------------
    def null_text(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Learned null caption: text (B, L0, D_text), mask (B, L0) all True."""
        nt = self.cond.null_text
        text = nt[None].expand(batch_size, -1, -1)
        mask = torch.ones(batch_size, nt.shape[0], dtype=torch.bool, device=nt.device)
        return text, mask

    def drop_text(self, text: torch.Tensor, text_mask: torch.Tensor, drop: torch.Tensor):
        """Replace the captions where drop (B,) is True by the null text; returns (text, mask).

        The output length is max(L, L0) (shorter side zero-padded and masked). Every row goes
        through torch.where, so the null text receives gradients in every step (DDP-friendly).
        """
        b, length, _ = text.shape
        null, null_mask = self.null_text(b)
        null = null.to(text.dtype)
        l0 = null.shape[1]
        n = max(length, l0)
        if length < n:
            text = torch.nn.functional.pad(text, (0, 0, 0, n - length))
            text_mask = torch.nn.functional.pad(text_mask, (0, n - length), value=False)
        if l0 < n:
            null = torch.nn.functional.pad(null, (0, 0, 0, n - l0))
            null_mask = torch.nn.functional.pad(null_mask, (0, n - l0), value=False)
        d = drop.to(torch.bool)
        return torch.where(d[:, None, None], null, text), torch.where(d[:, None], null_mask, text_mask)

    # --- helpers ----------------------------------------------------------------------------
    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        from .io import save_model

        save_model(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device=None, dtype=None) -> DenoiserModel:
        from .io import load_model

        model = load_model(directory, device=device, dtype=dtype)
        if cls is not DenoiserModel and not isinstance(model, cls):
            raise ValueError(
                f"{directory} holds a {type(model).__name__} ({model.config.backbone}), not a {cls.__name__}"
            )
        return model
