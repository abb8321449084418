"""Caption specs in GenEval's metadata format, their captions, their truth, and corruption.

A spec is exactly a GenEval metadata entry:
    {"tag": "position", "prompt": "a photo of a square left of a circle",
     "include": [{"class": "circle", "count": 1},
                 {"class": "square", "count": 1, "position": ["left of", 0]}]}
`include` items may carry "color"; "position": [relation, index of the reference item];
"counting" specs also carry `exclude: [{"class": c, "count": n + 1}]` as GenEval does.
In ShapesWorld a clean caption describes the counts of the classes it names exactly.
"""

from __future__ import annotations

import numpy as np

from rewardflow.shapes.vocab import CATEGORIES, NUMBER_WORDS, OPPOSITE, PLURALS, RELATIONS

CORRUPTION_KINDS: tuple[str, ...] = ("color", "count", "shape", "relation")


def _phrase(req: dict) -> str:
    n = int(req["count"])
    color = f"{req['color']} " if req.get("color") else ""
    noun = req["class"] if n == 1 else PLURALS[req["class"]]
    return f"{'a' if n == 1 else NUMBER_WORDS[n]} {color}{noun}"


def caption_from_spec(spec: dict) -> str:
    inc = spec["include"]
    rel = [r for r in inc if "position" in r]
    if rel:
        subject = rel[0]
        ref = inc[subject["position"][1]]
        return f"a photo of {_phrase(subject)} {subject['position'][0]} {_phrase(ref)}"
    return "a photo of " + " and ".join(_phrase(r) for r in inc)


def make_spec(tag: str, include: list[dict]) -> dict:
    """A complete spec (prompt and exact-count excludes filled in) from its include list."""
    spec = {"tag": tag, "include": include}
    exclude = [{"class": r["class"], "count": int(r["count"]) + 1} for r in include if int(r["count"]) > 1]
    if exclude:
        spec["exclude"] = exclude
    spec["prompt"] = caption_from_spec(spec)
    return spec


def _pick(rng: np.random.Generator, seq, k: int = 1):
    """k distinct elements in random order (k <= 2 here; scalar draws beat a permutation)."""
    i = int(rng.integers(len(seq)))
    if k == 1:
        return [seq[i]]
    j = int(rng.integers(len(seq) - 1))
    return [seq[i], seq[j + (j >= i)]]


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = [k for k, w in weights.items() if w > 0]
    u = rng.random() * sum(weights[k] for k in names)
    for k in names:
        u -= weights[k]
        if u < 0:
            return k
    return names[-1]


def sample_spec(rng: np.random.Generator, cfg, category: str | None = None) -> dict:
    """Draw a caption spec of `category` (default: drawn from cfg.category_weights)."""
    if category is None:
        category = _weighted(rng, cfg.category_weights)
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; choose from {CATEGORIES}")
    shapes, colors = cfg.shapes, cfg.colors
    if category == "single_object":
        return make_spec(category, [{"class": _pick(rng, shapes)[0], "count": 1}])
    if category == "two_object":
        a, b = _pick(rng, shapes, 2)
        return make_spec(category, [{"class": a, "count": 1}, {"class": b, "count": 1}])
    if category == "counting":
        n = int(cfg.counts[rng.integers(len(cfg.counts))])
        return make_spec(category, [{"class": _pick(rng, shapes)[0], "count": n}])
    if category == "colors":
        return make_spec(category, [{"class": _pick(rng, shapes)[0], "count": 1, "color": _pick(rng, colors)[0]}])
    if category == "position":
        ref, subj = _pick(rng, shapes, 2)
        rel = RELATIONS[rng.integers(len(RELATIONS))]
        return make_spec(category, [{"class": ref, "count": 1}, {"class": subj, "count": 1, "position": [rel, 0]}])
    a, b = _pick(rng, shapes, 2)
    c1, c2 = _pick(rng, colors, 2)
    return make_spec(category, [{"class": a, "count": 1, "color": c1}, {"class": b, "count": 1, "color": c2}])


def _relation_holds(subj, ref, relation: str) -> bool:
    # GenEval's rule on bounding boxes: shrink the centre offset by 10% of both sizes, then the
    # relation's axis must carry more than half of the (unshrunk) offset's length.
    off = np.array([subj.cx - ref.cx, subj.cy - ref.cy])
    dims = 2.0 * (subj.r + ref.r)
    rev = np.maximum(np.abs(off) - 0.1 * dims, 0.0) * np.sign(off)
    norm = float(np.hypot(*off))
    if norm == 0 or np.all(np.abs(rev) < 1e-6):
        return False
    dx, dy = rev / norm
    return {"left of": dx < -0.5, "right of": dx > 0.5, "above": dy < -0.5, "below": dy > 0.5}[relation]


def spec_holds(spec: dict, objects) -> bool:
    """Ground truth of a spec for a list of ShapeObject (exact counts of the named classes)."""
    groups = []
    for req in spec["include"]:
        found = [o for o in objects if o.shape == req["class"]]
        if len(found) != int(req["count"]):
            return False
        if req.get("color") and any(o.color != req["color"] for o in found):
            return False
        if "position" in req:
            rel, target = req["position"]
            if not all(_relation_holds(o, t, rel) for o in found for t in groups[target]):
                return False
        groups.append(found)
    for req in spec.get("exclude", []):
        if sum(o.shape == req["class"] for o in objects) >= int(req["count"]):
            return False
    return True


def _corrupt_once(spec: dict, kind: str, rng: np.random.Generator, cfg) -> dict | None:
    inc = [dict(r) for r in spec["include"]]  # edits below replace values, never mutate them
    if kind == "color":
        colored = [i for i, r in enumerate(inc) if r.get("color")]
        if not colored:
            return None
        if len(colored) == 2 and rng.random() < 0.5:  # attribute-binding error: swap colours
            a, b = colored
            inc[a]["color"], inc[b]["color"] = inc[b]["color"], inc[a]["color"]
        else:
            i = colored[rng.integers(len(colored))]
            inc[i]["color"] = _pick(rng, [c for c in cfg.colors if c != inc[i]["color"]])[0]
    elif kind == "count":
        i = int(rng.integers(len(inc)))
        if "position" in inc[i] or any("position" in r for r in inc):
            return None  # GenEval position prompts name single objects
        choices = [n for n in range(1, 5) if n != int(inc[i]["count"])]
        inc[i]["count"] = int(_pick(rng, choices)[0])
    elif kind == "shape":
        i = int(rng.integers(len(inc)))
        unused = [s for s in cfg.shapes if s not in {r["class"] for r in inc}]
        if not unused:
            return None
        inc[i]["class"] = _pick(rng, unused)[0]
    elif kind == "relation":
        rel = [r for r in inc if "position" in r]
        if not rel:
            return None
        old = rel[0]["position"][0]
        new = (
            OPPOSITE[old]
            if rng.random() < 0.5
            else _pick(rng, [r for r in RELATIONS if r not in (old, OPPOSITE[old])])[0]
        )
        rel[0]["position"] = [new, rel[0]["position"][1]]
    else:
        raise ValueError(f"unknown corruption kind {kind!r}; choose from {CORRUPTION_KINDS}")
    out = make_spec(spec["tag"], inc)
    return out


def corrupt_caption(
    spec: dict, rng: np.random.Generator, cfg, kind: str | None = None, objects=None
) -> tuple[dict, str | None]:
    """A wrong version of `spec` (wrong colour / count / shape / relation, like web alt text).

    `kind=None` draws among the kinds that apply, weighted by cfg.corruption_kinds. With
    `objects` (the scene's ShapeObjects) the result is guaranteed false for that scene. Returns
    (corrupted spec, kind used); (spec, None) in the rare case no false variant was found.
    """
    if kind is not None:
        kinds = [kind]
    else:
        left = {k: cfg.corruption_kinds.get(k, 0.0) for k in CORRUPTION_KINDS}
        kinds = []
        while any(w > 0 for w in left.values()):  # weighted order without replacement
            kinds.append(_weighted(rng, left))
            left[kinds[-1]] = 0.0
    for k in kinds:
        for _ in range(8):
            out = _corrupt_once(spec, k, rng, cfg)
            if out is None:
                break
            if out["prompt"] != spec["prompt"] and (objects is None or not spec_holds(out, objects)):
                return out, k
    return spec, None
