"""Backbone registry: `config.backbone` -> model class."""

from __future__ import annotations

from collections.abc import Callable

from .config import DenoiserConfig

BACKBONES: dict[str, type] = {}


def register_backbone(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        if name in BACKBONES and BACKBONES[name] is not cls:
            raise ValueError(f"backbone {name!r} already registered to {BACKBONES[name].__name__}")
        BACKBONES[name] = cls
        return cls

    return deco


def _ensure_builtin() -> None:
    # Importing the modules runs their @register_backbone decorators.
    from . import dit, rin, unet  # noqa: F401


def available_backbones() -> list[str]:
    _ensure_builtin()
    return sorted(BACKBONES)


def build_model(config: DenoiserConfig):
    """Instantiate the backbone named by config.backbone (weights freshly initialised)."""
    _ensure_builtin()
    if not isinstance(config, DenoiserConfig):
        raise TypeError(f"build_model needs a DenoiserConfig, got {type(config).__name__}")
    cls = BACKBONES.get(config.backbone)
    if cls is None:
        raise ValueError(f"unknown backbone {config.backbone!r}; valid backbones: {sorted(BACKBONES)}")
    return cls(config)
