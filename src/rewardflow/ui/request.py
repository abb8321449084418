"""One generation request of the web page, checked against the server's limits and the model.

Everything arrives as untrusted JSON; anything out of range, of the wrong type or unknown is a
RequestError whose message the page shows (HTTP 400), never a traceback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MODES = ("custom", "high", "isolate", "pairwise")
SOLVERS = ("euler", "heun")


class RequestError(ValueError):
    """A request the server refuses; the message says what to change."""


@dataclass
class Limits:
    max_steps: int = 100
    max_images: int = 4
    max_prompt_chars: int = 500
    max_best_of: int = 8
    max_guidance: float = 30.0
    max_queue: int = 4  # requests waiting behind the running one; more get a "busy" answer


@dataclass
class UIRequest:
    prompt: str
    steps: int
    guidance: float | None  # None: the model folder's saved guidance setting (it may be 3-branch)
    seed: int = 0
    num_images: int = 1
    solver: str = "euler"
    shift: float = 1.0
    mode: str = "custom"
    positive: dict[str, float | None] = field(default_factory=dict)
    negative: dict[str, float | None] = field(default_factory=dict)
    isolate: str | None = None
    pair: tuple[str, str] | None = None
    pair_t: float = 0.5
    anchor: dict[str, float | None] = field(default_factory=dict)
    best_of: int = 1
    select: str | None = None


def _number(body: dict, key: str, default, lo: float, hi: float, integer: bool = False):
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RequestError(f"{key} must be a number, got {v!r}")
    if integer and v != int(v):
        raise RequestError(f"{key} must be a whole number, got {v!r}")
    if not lo <= v <= hi:
        raise RequestError(f"{key} must lie in [{lo:g}, {hi:g}], got {v:g}")
    return int(v) if integer else float(v)


def _choice(body: dict, key: str, default: str, options) -> str:
    v = body.get(key, default)
    if v not in options:
        raise RequestError(f"{key} must be one of {list(options)}, got {v!r}")
    return v


def _targets(body: dict, key: str, keys: tuple[str, ...], allow_none: bool) -> dict[str, float | None]:
    d = body.get(key) or {}
    if not isinstance(d, dict):
        raise RequestError(f"{key} must be an object {{reward: value}}")
    out: dict[str, float | None] = {}
    for k, v in d.items():
        if k not in keys:
            raise RequestError(f"unknown reward {k!r} in {key}; this model's rewards: {list(keys)}")
        if v is None and allow_none:
            out[k] = None
            continue
        out[k] = _number(d, k, None, 0.0, 1.0)
    return out


def _prompt(body: dict, limits: Limits) -> str:
    p = body.get("prompt")
    if not isinstance(p, str) or not p.strip():
        raise RequestError("the prompt is empty: type what the image should show")
    if len(p) > limits.max_prompt_chars:
        raise RequestError(f"the prompt has {len(p)} characters; this server takes at most {limits.max_prompt_chars}")
    return p.strip()


def _key(body: dict, name: str, keys: tuple[str, ...]) -> str:
    k = body.get(name)
    if k not in keys:
        raise RequestError(f"{name} must be one of {list(keys)}, got {k!r}")
    return k


def parse_request(
    body: Any, keys: tuple[str, ...], limits: Limits, defaults: dict, image_size: int, scorers: tuple[str, ...] = ()
) -> UIRequest:
    """JSON body -> UIRequest; ``keys`` the model's rewards, ``defaults`` its saved settings,
    ``scorers`` the rewards the server measures images with (best-of-N selects by one of them)."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if body.get("resolution") not in (None, image_size):
        raise RequestError(f"this model makes {image_size}x{image_size} images; resolution {body['resolution']!r}")
    req = UIRequest(
        prompt=_prompt(body, limits),
        steps=_number(body, "steps", defaults["num_inference_steps"], 1, limits.max_steps, integer=True),
        guidance=None if body.get("guidance") is None else _number(body, "guidance", None, 0.0, limits.max_guidance),
        seed=_number(body, "seed", 0, 0, 2**31 - 1, integer=True),
        num_images=_number(body, "num_images", 1, 1, limits.max_images, integer=True),
        solver=_choice(body, "solver", defaults["solver"], SOLVERS),
        shift=_number(body, "shift", defaults["shift"], 0.1, 10.0),
        mode=_choice(body, "mode", "custom", MODES),
        positive=_targets(body, "positive", keys, allow_none=True),
        negative=_targets(body, "negative", keys, allow_none=True),
        anchor=_targets(body, "anchor", keys, allow_none=True),  # None: held unspecified in both branches
        best_of=_number(body, "best_of", 1, 1, limits.max_best_of, integer=True),
    )
    if keys and req.mode == "isolate":
        req.isolate = _key(body, "isolate", keys)
    if keys and req.mode == "pairwise":
        a, b = _key(body, "pair_a", keys), _key(body, "pair_b", keys)
        if a == b:
            raise RequestError("pairwise needs two different rewards")
        req.pair, req.pair_t = (a, b), _number(body, "pair_t", 0.5, 0.0, 1.0)
    if req.best_of > 1:
        if not scorers:
            raise RequestError("best-of-N needs a reward to select by, and this server measures none (--score)")
        req.select = _key(body, "select", scorers)
    if not keys and (req.positive or req.negative or req.mode != "custom"):
        raise RequestError("this model has no reward conditioning: reward targets and modes do not apply")
    return req
