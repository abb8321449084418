"""Name -> reward class registry.

Built-in rewards and real backends register themselves with `@register_reward("key")` when
their module is imported. `get_reward` imports the known provider modules lazily, so that
`import rewardflow` stays cheap and a heavy backend (transformers, large weights) only loads
when one of its rewards is asked for. Third-party packages can add rewards through the
``rewardflow.rewards`` entry-point group (each entry point names a module to import); a user's
own module can be named in the ``REWARDFLOW_REWARD_MODULES`` environment variable
(comma-separated module names), which is how `rewardflow score` finds unpackaged rewards.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import warnings

from rewardflow.rewards.base import Reward
from rewardflow.utils.plugins import SHAPES_REWARDS

_REGISTRY: dict[str, type[Reward]] = {}

# Modules whose import registers rewards; backends are appended here as they land.
PROVIDER_MODULES = [
    SHAPES_REWARDS,  # the built-in ShapesWorld rewards
    "rewardflow.rewards.backends",
]
_loaded = False


def register_reward(name: str):
    """Class decorator: register a `Reward` subclass under `name` (also sets `cls.name`)."""
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"reward name {name!r} must be non-empty letters, digits and '_'")

    def deco(cls: type[Reward]) -> type[Reward]:
        if not (isinstance(cls, type) and issubclass(cls, Reward)):
            raise TypeError(f"@register_reward({name!r}) must decorate a Reward subclass")
        old = _REGISTRY.get(name)
        # A re-imported module re-registers the same class; a different class is a clash.
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"reward {name!r} already registered by {old.__module__}.{old.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_providers() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in PROVIDER_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # the module exists but one of its own imports is missing
                warnings.warn(f"rewards from {mod} unavailable: {exc}", stacklevel=2)
    for mod in filter(None, (m.strip() for m in os.environ.get("REWARDFLOW_REWARD_MODULES", "").split(","))):
        # The user asked for this module by name: a failure is an error, not a warning.
        importlib.import_module(mod)
    try:
        eps = importlib.metadata.entry_points(group="rewardflow.rewards")
    except Exception:  # pragma: no cover - broken metadata must not break built-ins
        eps = ()
    for ep in eps:
        try:
            importlib.import_module(ep.value.split(":")[0])
        except Exception as exc:
            warnings.warn(f"reward plugin {ep.name!r} failed to load: {exc}", stacklevel=2)


def list_rewards() -> list[str]:
    """Sorted names of every registered reward."""
    _load_providers()
    return sorted(_REGISTRY)


def get_reward_class(name: str) -> type[Reward]:
    _load_providers()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown reward {name!r}; registered rewards: {', '.join(sorted(_REGISTRY)) or '(none)'}"
        ) from None


def get_reward(name: str, **kwargs) -> Reward:
    """Instantiate the reward registered under `name` with `kwargs` (e.g. batch_size, device)."""
    return get_reward_class(name)(**kwargs)


def reward_versions(names) -> dict[str, str]:
    """{name: version} of registered rewards: part of every cache key built on their scores, so
    a changed formula (a bumped version) reruns scoring and everything after it."""
    return {n: str(get_reward_class(n).version) for n in names}


# The seven rewards MIRO's released models are conditioned on, in their order.
PAPER_REWARDS = (
    "clip_score",
    "aesthetic_score",
    "image_reward_score",
    "pick_a_score_score",
    "hpsv2_score",
    "vqa_score",
    "sciscore_score",
)
ALIASES = {"paper": PAPER_REWARDS}


def parse_reward_list(spec: str | list[str]) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c'] with unknown names and duplicates rejected; 'paper' stands for
    the paper's seven rewards."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [m for n in names if n for m in ALIASES.get(n, (n,))]
    if not names:
        raise ValueError(f"no reward names given; registered rewards: {', '.join(list_rewards())}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"reward(s) listed twice: {dup}")
    for n in names:
        get_reward_class(n)
    return names
