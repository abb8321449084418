"""`shapes_alignment`: soft text-image agreement for ShapesWorld, like a tiny VQAScore.

score = (number of the caption's claims that hold in the detected scene) / (number of claims).
Claims per object phrase "DET [COLOUR] SHAPE": the count claim (exactly DET objects of SHAPE
are detected; ShapesWorld captions state exact counts of the classes they name) and, with a
colour, the colour claim (every detected SHAPE has COLOUR; false when none is detected). A
position caption adds the relation claim: every detected subject stands in the relation to
every detected reference, where "left of" means dx < 0 and |dx| > |dy| between box centres
(likewise for the others; y grows downward); false when either side is missing.

Captions outside the parser's grammar get `unparsed_value` (default 0.5, "no evidence either
way": finite, so binning needs no special case, and in the middle of the score range). Each is
counted in `stats["unparsed"]` and reported by `rewardflow score`; a warning names an example.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from rewardflow.rewards.base import Reward
from rewardflow.rewards.registry import register_reward
from rewardflow.rewards.shapes.detector import Detection, detect
from rewardflow.rewards.shapes.parse import CaptionParseError, ParsedCaption, parse_caption


def _relation(s: Detection, r: Detection, relation: str) -> bool:
    dx, dy = s.cx - r.cx, s.cy - r.cy
    horizontal = abs(dx) > abs(dy)
    return {
        "left of": horizontal and dx < 0,
        "right of": horizontal and dx > 0,
        "above": not horizontal and dy < 0,
        "below": not horizontal and dy > 0,
    }[relation]


def claim_results(parsed: ParsedCaption, dets: list[Detection]) -> list[bool]:
    """Truth of each claim of `parsed` in a scene of detections (same order as parsed.claims)."""
    found = [[d for d in dets if d.shape == p.shape] for p in parsed.phrases]
    out = []
    for c in parsed.claims:
        objs, p = found[c.phrase], parsed.phrases[c.phrase]
        if c.kind == "count":
            out.append(len(objs) == p.count)
        elif c.kind == "color":
            out.append(bool(objs) and all(d.color == p.color for d in objs))
        else:
            refs = found[c.other]
            out.append(bool(objs) and bool(refs) and all(_relation(s, r, c.relation) for s in objs for r in refs))
    return out


@register_reward("shapes_alignment")
class ShapesAlignment(Reward):
    """Fraction of the caption's claims (counts, colours, relation) the detector confirms, in [0, 1]."""

    version = "1"
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
            res = claim_results(parsed, d)
            out[i] = sum(res) / len(res)
        if unparsed:
            self.stats["unparsed"] = self.stats.get("unparsed", 0) + len(unparsed)
            warnings.warn(
                f"shapes_alignment: {len(unparsed)} caption(s) not understood, scored {self.unparsed_value} "
                f"(e.g. {unparsed[0][0]!r}: {unparsed[0][1]})",
                stacklevel=3,
            )
        return torch.from_numpy(out)
