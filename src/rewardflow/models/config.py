"""DenoiserConfig: the typed, JSON-round-trippable description of a denoiser backbone."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DenoiserConfig:
    """Everything needed to rebuild a denoiser (weights aside).

    Shared fields apply to every backbone. Fields marked (dit) or (unet) are read only by that
    backbone; they are kept in one flat dataclass so a checkpoint's config.json is one plain dict.
    """

    backbone: str = "dit"
    image_size: int = 32
    in_channels: int = 3
    out_channels: int | None = None  # None -> in_channels (predict a velocity of the same shape)
    text_dim: int = 384
    num_rewards: int = 0
    reward_keys: tuple[str, ...] = ()
    hidden_size: int = 128  # dit: token width; unet: base channel count
    num_heads: int = 4
    context_dim: int | None = (
        None  # width of cross-attention context tokens; None -> hidden_size (dit) / widest unet level
    )
    time_embed_dim: int | None = None  # width of the adaLN / adaptive-norm vector; None -> backbone default
    null_text_tokens: int = 4  # length L0 of the learned null text
    reward_fourier_dim: int = 64  # number of Fourier features (sin + cos) per reward value
    reward_max_freq: float = 64.0
    reward_null: bool = True  # learn a per-reward null token so reward_drop is available
    qk_norm: bool = False
    # Space-to-depth factor of the input (dit: patch size; unet: pixel-unshuffle stem, 1 = none).
    # None -> 2 for dit, 1 for unet.
    patch_size: int | None = None
    # (dit)
    depth: int = 4
    mlp_ratio: float = 4.0
    pos_embed: str = "sincos"  # "sincos" (fixed) or "learned"
    # (unet)
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = (8,)  # feature-map sizes that get self+cross attention
    num_groups: int = 8  # GroupNorm groups
    # (rin) Recurrent Interface Network: latent tokens (hidden_size wide, num_heads heads,
    # mlp_ratio feed-forward) read from and write to the patch tokens in each block.
    rin_blocks: int = 4  # read -> process -> write blocks
    rin_layers: int = 4  # latent self-attention layers per block
    rin_latents: int = 128  # latent tokens (all of them, conditioning tokens included when rin_concat_cond)
    rin_data_dim: int = 256  # width of the patch tokens
    rin_rw_heads: int = 8  # heads of the read / write / conditioning cross-attentions
    rin_data_mlp: float = 4.0  # feed-forward ratio of the write (patch-token) side
    rin_registers: int = 16  # learned register tokens beside the caption
    rin_cond_heads: int = 16  # heads of the conditioning transformer
    rin_cond_layers: int = 2  # layers of the conditioning transformer
    rin_cond_block: bool = True  # each block first cross-attends from the latents to the conditioning
    rin_concat_cond: bool = False  # conditioning tokens joined to the latents (else the time token is added)
    rin_cond_tokens: int = 0  # with rin_concat_cond: rewards + registers + caption tokens
    rin_self_cond: float = 0.9  # latent self-conditioning rate in training; 0 = no self-conditioning
    rin_sigma_data: float = 0.5  # input / output scaling by the noise level; 0 = none
    rin_logvar_channels: int = 0  # learned log-variance head (uncertainty loss weighting); 0 = none
    rin_null_text: str = "learned"  # or "fixed": a buffer, e.g. a released empty-prompt embedding
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes that travel with the checkpoint

    def __post_init__(self) -> None:
        # JSON gives lists; the dataclass promises tuples (hashable, immutable).
        self.reward_keys = tuple(str(k) for k in self.reward_keys)
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attn_resolutions = tuple(int(r) for r in self.attn_resolutions)
        if self.num_rewards and not self.reward_keys:
            self.reward_keys = tuple(f"reward_{i}" for i in range(self.num_rewards))
        if not self.num_rewards and self.reward_keys:
            self.num_rewards = len(self.reward_keys)
        if self.patch_size is None:
            self.patch_size = 1 if self.backbone == "unet" else 2
        self.validate()

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(f"invalid DenoiserConfig: {msg}")

        if len(self.reward_keys) != self.num_rewards:
            bad(f"num_rewards={self.num_rewards} but {len(self.reward_keys)} reward_keys {list(self.reward_keys)}")
        if len(set(self.reward_keys)) != len(self.reward_keys):
            bad(f"duplicate reward_keys {list(self.reward_keys)}")
        for name in ("image_size", "in_channels", "text_dim", "hidden_size", "num_heads", "null_text_tokens"):
            if int(getattr(self, name)) <= 0:
                bad(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_rewards < 0:
            bad("num_rewards must be >= 0")
        if self.reward_fourier_dim <= 0 or self.reward_fourier_dim % 2:
            bad(f"reward_fourier_dim must be a positive even number, got {self.reward_fourier_dim}")
        if self.pos_embed not in ("sincos", "learned"):
            bad(f"pos_embed must be 'sincos' or 'learned', got {self.pos_embed!r}")
        if self.patch_size < 1 or self.image_size % self.patch_size:
            bad(f"image_size {self.image_size} not divisible by patch_size {self.patch_size}")
        if self.backbone == "dit":
            if self.hidden_size % self.num_heads:
                bad(f"hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")
            if self.pos_embed == "sincos" and self.hidden_size % 4:
                bad("sincos pos_embed needs hidden_size divisible by 4")
        if self.backbone == "rin":
            self._validate_rin(bad)
        if self.backbone == "unet":
            levels, side = len(self.channel_mult), self.image_size // self.patch_size
            if levels < 1 or side % (2 ** (levels - 1)):
                bad(
                    f"feature size {side} (image_size / patch_size) not divisible by 2^(levels-1) "
                    f"for channel_mult {self.channel_mult}"
                )
            for m in self.channel_mult:
                if (self.hidden_size * m) % self.num_groups:
                    bad(f"channels {self.hidden_size * m} not divisible by num_groups {self.num_groups}")
                if (self.hidden_size * m) % self.num_heads:
                    bad(f"channels {self.hidden_size * m} not divisible by num_heads {self.num_heads}")

    def _validate_rin(self, bad) -> None:
        d = self.hidden_size
        for name, heads in (("num_heads", self.num_heads), ("rin_cond_heads", self.rin_cond_heads)):
            if d % heads:
                bad(f"hidden_size {d} not divisible by {name} {heads}")
        if d % 4:
            bad(f"rin needs hidden_size divisible by 4 (its scalar embedders are hidden_size / 4 wide), got {d}")
        if min(d, self.rin_data_dim) % self.rin_rw_heads:
            bad(f"min(hidden_size, rin_data_dim) = {min(d, self.rin_data_dim)} not divisible by rin_rw_heads")
        if self.rin_null_text not in ("learned", "fixed"):
            bad(f"rin_null_text must be 'learned' or 'fixed', got {self.rin_null_text!r}")
        if self.rin_concat_cond and self.rin_latents <= self.rin_cond_tokens + 1:
            bad(f"rin_latents {self.rin_latents} leaves no learned latents beside {self.rin_cond_tokens} + 1 tokens")
        if not 0 <= self.rin_self_cond <= 1:
            bad(f"rin_self_cond is a rate in [0, 1], got {self.rin_self_cond}")

    # --- derived sizes -------------------------------------------------------------------
    @property
    def out_ch(self) -> int:
        return self.out_channels if self.out_channels is not None else self.in_channels

    @property
    def ctx_dim(self) -> int:
        if self.context_dim is not None:
            return self.context_dim
        return self.hidden_size * (max(self.channel_mult) if self.backbone == "unet" else 1)

    @property
    def cond_dim(self) -> int:
        if self.time_embed_dim is not None:
            return self.time_embed_dim
        return self.hidden_size * (4 if self.backbone == "unet" else 1)

    # --- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DenoiserConfig:
        """Build from a dict; keys starting with '_' (file metadata) are ignored, unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(k for k in d if k not in names and not k.startswith("_"))
        if unknown:
            raise ValueError(f"unknown DenoiserConfig field(s) {unknown}; valid fields: {sorted(names)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, s: str) -> DenoiserConfig:
        return cls.from_dict(json.loads(s))

    def replace(self, **overrides: Any) -> DenoiserConfig:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(k for k in overrides if k not in names)
        if unknown:
            raise ValueError(f"unknown DenoiserConfig field(s) {unknown}; valid fields: {sorted(names)}")
        # A new reward list must bring its own count (and vice versa) without tripping validation.
        if "reward_keys" in overrides and "num_rewards" not in overrides:
            overrides["num_rewards"] = len(overrides["reward_keys"])
        if "num_rewards" in overrides and "reward_keys" not in overrides:
            overrides["reward_keys"] = ()
        return dataclasses.replace(self, **overrides)
