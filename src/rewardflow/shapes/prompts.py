"""The fixed ShapesWorld evaluation prompt set, GenEval-style, shipped as an asset.

`build_prompt_set()` enumerates every distinct prompt of each category in a fixed order,
shuffles it with a fixed seed, and takes `per_category` of them. Categories with fewer distinct
prompts (3 for single_object, 9 for counting...) repeat their prompts evenly, which is the same
as drawing several images per prompt. The shipped file is regenerated with

    python -m rewardflow.shapes.prompts --write src/rewardflow/assets/shapes_prompts.jsonl

and a test checks that the shipped file equals `build_prompt_set()`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from rewardflow.shapes.captions import make_spec
from rewardflow.shapes.vocab import CATEGORIES, DEFAULT_COLORS, RELATIONS, SHAPES

PROMPTS_PATH = Path(__file__).resolve().parents[1] / "assets" / "shapes_prompts.jsonl"
PER_CATEGORY = 72  # a multiple of 3, 6, 9, 18 and 24: balanced repeats where prompts are few


def _distinct(category: str, shapes, colors, counts) -> list[dict]:
    pairs = list(itertools.permutations(shapes, 2))
    if category == "single_object":
        return [make_spec(category, [{"class": s, "count": 1}]) for s in shapes]
    if category == "two_object":
        return [make_spec(category, [{"class": a, "count": 1}, {"class": b, "count": 1}]) for a, b in pairs]
    if category == "counting":
        return [make_spec(category, [{"class": s, "count": n}]) for s in shapes for n in counts]
    if category == "colors":
        return [make_spec(category, [{"class": s, "count": 1, "color": c}]) for s in shapes for c in colors]
    if category == "position":
        return [
            make_spec(category, [{"class": ref, "count": 1}, {"class": subj, "count": 1, "position": [rel, 0]}])
            for ref, subj in pairs
            for rel in RELATIONS
        ]
    return [
        make_spec(category, [{"class": a, "count": 1, "color": c1}, {"class": b, "count": 1, "color": c2}])
        for a, b in pairs
        for c1, c2 in itertools.permutations(colors, 2)
    ]


def build_prompt_set(
    per_category: int = PER_CATEGORY, seed: int = 0, shapes=SHAPES, colors=DEFAULT_COLORS, counts=(2, 3, 4)
) -> list[dict]:
    out = []
    for k, category in enumerate(CATEGORIES):
        specs = _distinct(category, tuple(shapes), tuple(colors), tuple(counts))
        order = np.random.default_rng([seed, k]).permutation(len(specs))
        out += [specs[order[i % len(specs)]] for i in range(per_category)]
    return out


def load_shapes_prompts(path: str | Path | None = None, categories=None, max_count: int | None = None) -> list[dict]:
    """The shipped prompt set (or a JSONL file of the same format), optionally filtered.

    `max_count` drops prompts that ask for more objects of a class than a world can show
    (the "easy" preset shows at most 2).
    """
    p = Path(path) if path is not None else PROMPTS_PATH
    entries = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    if categories is not None:
        unknown = set(categories) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; choose from {CATEGORIES}")
        entries = [e for e in entries if e["tag"] in set(categories)]
    if max_count is not None:
        entries = [e for e in entries if all(int(r["count"]) <= max_count for r in e["include"])]
    return entries


def write_prompt_set(path: str | Path, entries: list[dict]) -> None:
    Path(path).write_text("".join(json.dumps(e) + "\n" for e in entries))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Write the ShapesWorld evaluation prompt set (JSONL).")
    ap.add_argument("--write", default=str(PROMPTS_PATH), help="output path")
    ap.add_argument("--per-category", type=int, default=PER_CATEGORY)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    entries = build_prompt_set(args.per_category, args.seed)
    write_prompt_set(args.write, entries)
    print(f"wrote {len(entries)} prompts to {args.write}")


if __name__ == "__main__":
    main()


def training_prompts(n: int, seed: int = 0) -> list[str]:
    """n captions of the default world cycling through the six GenEval-style categories, each
    drawn with its own seeded generator (the trainer's default sample and eval prompts)."""
    import numpy as np

    from rewardflow.shapes.captions import sample_spec
    from rewardflow.shapes.config import ShapesConfig

    cfg, cats = ShapesConfig(), list(CATEGORIES)
    return [
        sample_spec(np.random.default_rng([seed, i]), cfg, category=cats[i % len(cats)])["prompt"] for i in range(n)
    ]
