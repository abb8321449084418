"""Scenes: objects with a shape, a colour, a centre and a size, laid out without overlap.

A scene is built FROM a caption spec (a GenEval-style metadata dict, see captions.py), so the
clean caption is true by construction. Coordinates are fractions of the image side; x grows to
the right and y grows downward, so "above" means a smaller y.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rewardflow.shapes.captions import sample_spec
from rewardflow.shapes.config import ShapesConfig
from rewardflow.shapes.vocab import PALETTE


@dataclass
class ShapeObject:
    shape: str
    color: str
    cx: float
    cy: float
    r: float  # half-extent of the bounding box
    rgb: tuple[int, int, int] = (0, 0, 0)  # the rendered colour (palette colour + jitter)


@dataclass
class Scene:
    objects: list[ShapeObject]
    bg_rgb: tuple[int, int, int] = (230, 230, 230)
    texture_amplitude: float = 0.0
    texture_seed: int = 0
    spec: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "objects": [
                {"shape": o.shape, "color": o.color, "cx": o.cx, "cy": o.cy, "r": o.r, "rgb": list(o.rgb)}
                for o in self.objects
            ],
            "background": {
                "rgb": list(self.bg_rgb),
                "texture_amplitude": self.texture_amplitude,
                "texture_seed": self.texture_seed,
            },
        }

    @classmethod
    def from_dict(cls, d: dict, spec: dict | None = None) -> Scene:
        objs = [ShapeObject(**{**o, "rgb": tuple(o["rgb"])}) for o in d["objects"]]
        bg = d["background"]
        return cls(objs, tuple(bg["rgb"]), bg["texture_amplitude"], bg["texture_seed"], spec or {})


class LayoutError(RuntimeError):
    pass


def _fits(cand: np.ndarray, r: float, placed: list[tuple[float, float, float]], gap: float) -> np.ndarray:
    # Disjoint bounding boxes (plus a gap) on at least one axis: no overlap, no touching.
    ok = np.ones(len(cand), dtype=bool)
    for px, py, pr in placed:
        need = r + pr + gap
        ok &= (np.abs(cand[:, 0] - px) >= need) | (np.abs(cand[:, 1] - py) >= need)
    return ok


_CANDIDATES = 128  # one vectorised draw; enough that a crowded layout rarely restarts


def _candidates(rng, r, ref, relation, cfg) -> np.ndarray | None:
    m = cfg.margin
    if ref is None or relation is None:
        return rng.uniform(m + r, 1.0 - m - r, size=(_CANDIDATES, 2))
    # Separation on the relation's axis is at least the sum of half-extents (disjoint
    # projections) and the cross-axis offset stays small: unambiguous under GenEval's rule.
    px, py, pr = ref
    horizontal = relation in ("left of", "right of")
    sign = -1.0 if relation in ("left of", "above") else 1.0
    main0, cross0 = (px, py) if horizontal else (py, px)
    lo_d = pr + r + cfg.gap
    hi_d = abs(((m + r) if sign < 0 else (1.0 - m - r)) - main0)
    if hi_d < lo_d:
        return None
    d = rng.uniform(lo_d, hi_d, size=_CANDIDATES)
    main = main0 + sign * d
    cross = np.clip(cross0 + rng.uniform(-0.3, 0.3, size=_CANDIDATES) * d, m + r, 1.0 - m - r)
    return np.stack([main, cross] if horizontal else [cross, main], axis=1)


def _layout(rng: np.random.Generator, cfg: ShapesConfig, n: int, relation: str | None) -> list[tuple]:
    """Centres and radii for n objects; with `relation`, object 1 stands in it to object 0."""
    lo, hi = cfg.radius_range
    if n > 1:
        # Two boxes side by side must fit across the frame; capping radii up front turns
        # rejection sampling from hundreds of tries into a handful.
        cap = 0.9 * (1.0 - 2.0 * cfg.margin - cfg.gap) / 4.0
        hi = min(hi, cap)
        lo = min(lo, hi)
    radii = rng.uniform(lo, hi, size=n)
    for _ in range(60):
        placed: list[tuple[float, float, float]] = []
        for i, r in enumerate(radii):
            cand = _candidates(rng, r, placed[0] if i == 1 else None, relation if i == 1 else None, cfg)
            if cand is None:
                break
            ok = _fits(cand, r, placed, cfg.gap)
            first = int(ok.argmax())
            if not ok[first]:
                break
            cx, cy = cand[first]
            placed.append((float(cx), float(cy), float(r)))
        if len(placed) == n:
            return placed
        radii = radii * 0.95  # crowded: shrink everyone a little and retry
    raise LayoutError(f"could not place {n} objects with radius_range={cfg.radius_range}")


def _jitter_rgb(rng: np.random.Generator, color: str, amount: float) -> tuple[int, int, int]:
    jit = rng.uniform(-amount, amount, size=3).tolist() if amount > 0 else [0.0, 0.0, 0.0]
    return tuple(min(255, max(0, round(c + j))) for c, j in zip(PALETTE[color], jit))


def scene_for_spec(spec: dict, rng: np.random.Generator, cfg: ShapesConfig, distractors: bool = True) -> Scene:
    """A clean scene in which every claim of `spec` holds (colours unspecified by it are random)."""
    items: list[tuple[str, str | None]] = []
    relation = None
    for req in spec["include"]:
        items += [(req["class"], req.get("color"))] * int(req["count"])
        if "position" in req:
            relation = req["position"][0]
    if relation is not None and len(items) != 2:
        raise ValueError("position specs must name exactly two single objects")
    mentioned = {req["class"] for req in spec["include"]}
    others = [s for s in cfg.shapes if s not in mentioned]
    while distractors and others and len(items) < cfg.max_objects and rng.random() < cfg.distractor_prob:
        items.append((others[rng.integers(len(others))], None))
    layout = _layout(rng, cfg, len(items), relation)
    objects = []
    for (shape, color), (cx, cy, r) in zip(items, layout):
        color = color or cfg.colors[rng.integers(len(cfg.colors))]
        objects.append(ShapeObject(shape, color, cx, cy, r, _jitter_rgb(rng, color, cfg.color_jitter)))
    lo, hi = cfg.bg_value_range
    bg = rng.uniform(lo, hi) + rng.uniform(-cfg.bg_tint, cfg.bg_tint, size=3)
    textured = rng.random() < cfg.texture_prob
    amp = float(rng.uniform(0.3, 1.0) * cfg.texture_amplitude) if textured else 0.0
    return Scene(objects, tuple(min(255, max(0, round(v))) for v in bg.tolist()), amp, int(rng.integers(2**31)), spec)


def sample_scene(rng: np.random.Generator, cfg: ShapesConfig, category: str | None = None) -> Scene:
    """Draw a caption spec of `category` (or one drawn from cfg.category_weights) and its scene."""
    spec = sample_spec(rng, cfg, category)
    return scene_for_spec(spec, rng, cfg)
