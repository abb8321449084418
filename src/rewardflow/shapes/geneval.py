"""GenEval-style evaluation of ShapesWorld images (Ghosh et al., 2023, adapted to shapes).

Each prompt is a GenEval metadata entry (see `rewardflow.shapes.prompts`): a tag (one of
the six categories) and `include` / `exclude` requirements on object class, count, colour and
relative position. An image is correct only if EVERY requirement holds (strict). Accuracy is
computed per category; the overall score is the mean of the category accuracies, as in GenEval.

Counting semantics: with `exact_counts=True` (default) a requirement "n circles" holds only if
exactly n circles are detected, and a colour requirement needs all of them in that colour;
`exact_counts=False` follows GenEval's code: at least n (largest first), and `exclude` items
cap counts. Classes a prompt does not name may appear in both modes.

Detection is done by `rewardflow.shapes.geneval_detector`, separate code from the training rewards.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rewardflow.shapes.geneval_detector import Detection, detect_objects
from rewardflow.shapes.vocab import CATEGORIES, DEFAULT_COLORS

POSITION_THRESHOLD = 0.1  # GenEval's value: shrink centre offsets by 10% of both box sizes


def relative_position(a: Detection, b: Detection) -> set[str]:
    """Relations of a to b under GenEval's rule on bounding boxes."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.bbox, b.bbox
    offset = np.array(a.center) - np.array(b.center)
    dims = np.array([ax1 - ax0 + bx1 - bx0, ay1 - ay0 + by1 - by0], dtype=np.float64)
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * dims, 0.0) * np.sign(offset)
    norm = float(np.linalg.norm(offset))
    if norm == 0 or np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / norm
    rels = set()
    if dx < -0.5:
        rels.add("left of")
    if dx > 0.5:
        rels.add("right of")
    if dy < -0.5:
        rels.add("above")  # image y grows downward
    if dy > 0.5:
        rels.add("below")
    return rels


def check_detections(dets: list[Detection], entry: dict, exact_counts: bool = True) -> tuple[bool, str]:
    """(correct, reason) for one prompt entry given the detected objects."""
    reasons: list[str] = []
    groups: list[list[Detection] | None] = []
    for req in entry["include"]:
        cls, n, color = req["class"], int(req["count"]), req.get("color")
        of_class = [d for d in dets if d.shape == cls]
        ok = True
        if exact_counts:
            found = of_class
            if len(found) != n:
                ok = False
                reasons.append(f"expected {cls}=={n}, found {len(found)}")
            elif color and any(d.color != color for d in found):
                ok = False
                reasons.append(f"expected {color} {cls}, found {[d.color for d in found]}")
        else:
            found = of_class[:n]  # largest first stands in for GenEval's confidence order
            if len(found) < n:
                ok = False
                reasons.append(f"expected {cls}>={n}, found {len(found)}")
            elif color and [d.color for d in found].count(color) < n:
                ok = False
                reasons.append(f"expected {color} {cls}>={n}, found {[d.color for d in found]}")
        if ok and "position" in req:
            rel, target = req["position"]
            targets = groups[target] if target < len(groups) else None
            if targets is None:
                ok = False
                reasons.append(f"no target for {cls} to be {rel}")
            elif not all(rel in relative_position(d, t) for d in found for t in targets):
                ok = False
                reasons.append(f"expected {cls} {rel} target")
        groups.append(found if ok else None)
    for req in entry.get("exclude", []):
        n = sum(d.shape == req["class"] for d in dets)
        if n >= int(req["count"]):
            reasons.append(f"expected {req['class']}<{req['count']}, found {n}")
    return not reasons, "; ".join(reasons)


def evaluate_image(image, entry: dict, exact_counts: bool = True, colors: tuple[str, ...] = DEFAULT_COLORS) -> dict:
    dets = detect_objects(image, colors=colors)
    correct, reason = check_detections(dets, entry, exact_counts)
    return {
        "tag": entry["tag"],
        "prompt": entry["prompt"],
        "correct": correct,
        "reason": reason,
        "detections": [(d.shape, d.color, d.bbox) for d in dets],
    }


@dataclass
class GenEvalResult:
    per_image: list[dict] = field(default_factory=list)
    per_category: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    overall: float = float("nan")

    def to_dict(self) -> dict:
        return {"overall": self.overall, "per_category": self.per_category, "counts": self.counts}

    def summary(self) -> str:
        lines = [f"{tag:14s} {acc:6.3f}  (n={self.counts[tag]})" for tag, acc in self.per_category.items()]
        return "\n".join(lines + [f"{'overall':14s} {self.overall:6.3f}"])


def evaluate(
    images, entries: list[dict], exact_counts: bool = True, colors: tuple[str, ...] = DEFAULT_COLORS
) -> GenEvalResult:
    """Strict GenEval-style scores of `images[i]` against `entries[i]` (equal lengths)."""
    images = list(images)
    if len(images) != len(entries):
        raise ValueError(f"got {len(images)} images for {len(entries)} prompt entries")
    per_image = [evaluate_image(img, e, exact_counts, colors) for img, e in zip(images, entries)]
    by_tag: dict[str, list[bool]] = defaultdict(list)
    for r in per_image:
        by_tag[r["tag"]].append(r["correct"])
    order = [t for t in CATEGORIES if t in by_tag] + sorted(t for t in by_tag if t not in CATEGORIES)
    per_category = {t: float(np.mean(by_tag[t])) for t in order}
    overall = float(np.mean(list(per_category.values()))) if per_category else float("nan")
    return GenEvalResult(per_image, per_category, {t: len(by_tag[t]) for t in order}, overall)


def geneval_metric(entries: Sequence[Mapping], exact_counts: bool = True):
    """A target-search metric (images, prompts) -> GenEval-style overall accuracy, from this
    module's own detector (not a training reward). ``entries`` are GenEval metadata dicts;
    images are matched by prompt."""
    by_prompt = {e["prompt"]: dict(e) for e in entries}

    def metric(images, prompts):
        missing = sorted({p for p in prompts if p not in by_prompt})
        if missing:
            raise ValueError(f"no GenEval metadata for prompt(s) {missing[:3]}")
        return evaluate(list(images), [by_prompt[p] for p in prompts], exact_counts).overall

    metric.__name__ = "geneval_overall"
    return metric
