"""Every knob of ShapesWorld in one dataclass, plus the named presets.

Geometry is in fractions of the image side so a config means the same scene at any `size`;
`radius` is the half-extent of an object's bounding box (circle radius, square half-side,
triangle half-base = half-height).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from rewardflow.shapes.vocab import CATEGORIES, DEFAULT_COLORS, PALETTE, SHAPES


@dataclass
class ShapesConfig:
    size: int = 32
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = DEFAULT_COLORS
    # Relative frequency of GenEval's six categories in generated captions.
    category_weights: dict[str, float] = field(default_factory=lambda: {c: 1.0 for c in CATEGORIES})
    max_objects: int = 4
    counts: tuple[int, ...] = (2, 3, 4)  # object counts used by the "counting" category
    radius_range: tuple[float, float] = (0.12, 0.22)
    gap: float = 0.05  # min free space between object bounding boxes (keeps detection well-defined)
    margin: float = 0.02  # min distance of a clean object to the frame
    # Extra objects of classes the caption does not mention (GenEval tolerates them too).
    distractor_prob: float = 0.25
    color_jitter: float = 10.0  # uniform per-channel jitter of object colours, in uint8 units
    bg_value_range: tuple[float, float] = (200.0, 245.0)  # light neutral backgrounds
    bg_tint: float = 8.0
    texture_prob: float = 0.5
    texture_amplitude: float = 6.0  # light: far below the object/background contrast
    antialias: bool = True
    # Quality spectrum: each degradation is drawn independently with its own probability and
    # a level uniform in 1..max_level (level semantics in degrade.py).
    p_caption_corruption: float = 0.25
    corruption_kinds: dict[str, float] = field(
        default_factory=lambda: {"color": 1.0, "count": 1.0, "shape": 1.0, "relation": 1.0}
    )
    p_blur: float = 0.25
    p_noise: float = 0.25
    p_low_contrast: float = 0.2
    p_desaturate: float = 0.2
    p_off_frame: float = 0.1
    max_level: int = 5

    def __post_init__(self) -> None:
        self.shapes = tuple(self.shapes)
        self.colors = tuple(self.colors)
        self.counts = tuple(int(c) for c in self.counts)
        self.radius_range = tuple(float(r) for r in self.radius_range)
        self.bg_value_range = tuple(float(v) for v in self.bg_value_range)
        self.validate()

    def validate(self) -> None:
        bad = [s for s in self.shapes if s not in SHAPES]
        if bad or len(self.shapes) < 2:
            raise ValueError(f"shapes must be >= 2 of {SHAPES}, got {self.shapes}")
        bad = [c for c in self.colors if c not in PALETTE]
        if bad or len(self.colors) < 2:
            raise ValueError(f"colors must be >= 2 of {tuple(PALETTE)}, got {self.colors}")
        unknown = set(self.category_weights) - set(CATEGORIES)
        if unknown or sum(self.category_weights.values()) <= 0:
            raise ValueError(f"category_weights keys must be among {CATEGORIES}, got {self.category_weights}")
        unknown = set(self.corruption_kinds) - {"color", "count", "shape", "relation"}
        if unknown:
            raise ValueError(f"unknown corruption kinds {sorted(unknown)}")
        if not 1 <= self.max_objects <= 6:
            raise ValueError(f"max_objects must be in 1..6, got {self.max_objects}")
        if any(c < 2 or c > self.max_objects for c in self.counts):
            raise ValueError(f"counts must lie in 2..max_objects={self.max_objects}, got {self.counts}")
        lo, hi = self.radius_range
        if not 0.02 <= lo <= hi <= 0.45:
            raise ValueError(f"radius_range must satisfy 0.02 <= lo <= hi <= 0.45, got {self.radius_range}")
        if self.size < 8:
            raise ValueError(f"size must be >= 8, got {self.size}")
        for name in (
            "p_caption_corruption",
            "p_blur",
            "p_noise",
            "p_low_contrast",
            "p_desaturate",
            "p_off_frame",
            "distractor_prob",
            "texture_prob",
        ):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability, got {p}")

    def replace(self, **changes) -> ShapesConfig:
        return dataclasses.replace(self, **changes)

    def clean(self) -> ShapesConfig:
        """The same world with every degradation switched off."""
        return self.replace(
            p_caption_corruption=0.0, p_blur=0.0, p_noise=0.0, p_low_contrast=0.0, p_desaturate=0.0, p_off_frame=0.0
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> ShapesConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ShapesConfig keys {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> ShapesConfig:
        if name not in SHAPES_PRESETS:
            raise ValueError(f"unknown ShapesWorld preset {name!r}; choose from {sorted(SHAPES_PRESETS)}")
        return SHAPES_PRESETS[name].replace(**overrides)


# "easy" is sized for the few-minute CPU demo: one or two large objects (7-10 px radius at
# 32x32 for lone objects; pairs shrink to fit), no distractors, counting only up to two.
SHAPES_PRESETS: dict[str, ShapesConfig] = {
    "easy": ShapesConfig(max_objects=2, counts=(2,), radius_range=(0.22, 0.31), distractor_prob=0.0, gap=0.06),
    "full": ShapesConfig(),
}
