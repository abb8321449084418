"""`shapes_alignment`: soft text-image agreement for ShapesWorld, like a tiny VQAScore.

score = mean over the caption's claims of how surely each holds in the detected scene, in
[0, 1]. Claims per object phrase "DET [COLOUR] SHAPE": the count claim (exactly DET objects of
SHAPE are detected; ShapesWorld captions state exact counts of the classes they name) and,
with a colour, the colour claim (the detected SHAPEs have COLOUR). A position caption adds the
relation claim: every detected subject stands in the relation to every detected reference,
where "left of" means dx < 0 and |dx| > |dy| between box centres (likewise for the others;
y grows downward).

A claim that fails scores 0 (no object of the shape, wrong count, wrong colour, wrong side).
A claim that holds scores the detector's confidence, as a VQA model's "yes" probability
would: the count claim the mean shape confidence of the counted objects (the margin of the
shape tests), the colour claim the mean over them of 1 - (hue distance / 30 degrees)^2 (0 for
an object of another colour), and the relation claim the smallest margin over the pairs,
(along-axis offset - |across-axis offset|) / mean object extent, capped at 1. So an image
that depicts the caption clearly scores near 1, one that depicts it ambiguously (a blurred
square near a disc, an off-hue colour, objects almost level) scores in between: the reward
takes many values instead of a fraction of two or three claims, which gives its bins, and
the conditioning on them, something to resolve.

Captions outside the parser's grammar get `unparsed_value` (default 0.5, "no evidence either
way": finite, so binning needs no special case, and in the middle of the score range). Each is
counted in `stats["unparsed"]` and reported by `rewardflow score`; a warning names an example.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from rewardflow.rewards.base import Reward
from rewardflow.rewards.registry import register_reward
from rewardflow.shapes.rewards.detector import PALETTE_HUES, Detection, detect, hue_distance
from rewardflow.shapes.rewards.parse import CaptionParseError, ParsedCaption, parse_caption

HUE_TOLERANCE = math.radians(30.0)  # half the mean gap between palette hues


def relation_margin(s: Detection, r: Detection, relation: str) -> float:
    """How surely `s` stands in `relation` to `r`, in [0, 1]; 0 when it does not."""
    dx, dy = s.cx - r.cx, s.cy - r.cy
    along, across = (dx, dy) if relation in ("left of", "right of") else (dy, dx)
    if relation in ("left of", "above"):
        along = -along
    scale = max(1.0, (s.w + s.h + r.w + r.h) / 4)
    return float(np.clip((along - abs(across)) / scale, 0.0, 1.0))


def colour_confidence(d: Detection, color: str) -> float:
    if d.color != color or d.hue is None or color not in PALETTE_HUES:
        return 0.0
    return max(0.0, 1.0 - (hue_distance(d.hue, PALETTE_HUES[color]) / HUE_TOLERANCE) ** 2)


def claim_values(parsed: ParsedCaption, dets: list[Detection]) -> list[float]:
    """Confidence in [0, 1] that each claim of `parsed` holds (same order as parsed.claims)."""
    found = [[d for d in dets if d.shape == p.shape] for p in parsed.phrases]
    out = []
    for c in parsed.claims:
        objs, p = found[c.phrase], parsed.phrases[c.phrase]
        if not objs:
            out.append(0.0)
        elif c.kind == "count":
            out.append(float(np.mean([d.shape_conf for d in objs])) if len(objs) == p.count else 0.0)
        elif c.kind == "color":
            out.append(float(np.mean([colour_confidence(d, p.color) for d in objs])))
        else:
            refs = found[c.other]
            out.append(min((relation_margin(s, r, c.relation) for s in objs for r in refs), default=0.0))
    return out


@register_reward("shapes_alignment")
class ShapesAlignment(Reward):
    """Mean confidence that the caption's claims (counts, colours, relation) hold, in [0, 1]."""

    version = "2"
    batch_size = 256

    def __init__(self, unparsed_value: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.unparsed_value = float(unparsed_value)
        self._cache: dict[str, ParsedCaption | str] = {}

    def parse(self, caption: str) -> ParsedCaption | str:
        """ParsedCaption, or the parse error message; cached (captions repeat a lot)."""
        hit = self._cache.get(caption)
        if hit is None:
            try:
                hit = parse_caption(caption)
            except CaptionParseError as exc:
                hit = str(exc)
            if len(self._cache) < 100_000:
                self._cache[caption] = hit
        return hit

    def _score(self, images, captions):
        dets = detect(images)
        out = np.empty(len(captions), dtype=np.float32)
        unparsed = []
        for i, (cap, d) in enumerate(zip(captions, dets)):
            parsed = self.parse(cap)
            if isinstance(parsed, str):
                out[i] = self.unparsed_value
                unparsed.append((cap, parsed))
                continue
            out[i] = float(np.mean(claim_values(parsed, d)))
        if unparsed:
            self.stats["unparsed"] = self.stats.get("unparsed", 0) + len(unparsed)
            warnings.warn(
                f"shapes_alignment: {len(unparsed)} caption(s) not understood, scored {self.unparsed_value} "
                f"(e.g. {unparsed[0][0]!r}: {unparsed[0][1]})",
                stacklevel=3,
            )
        return torch.from_numpy(out)
