"""Prompt lists from files, the shipped ShapesWorld set, or a literal prompt."""

from __future__ import annotations

import json
from pathlib import Path

SHAPES_ALIASES = ("shapes", "shapesworld")
# Prompt sets shipped in rewardflow/assets/prompts (sources and licences in its README.md).
SHIPPED = {"parti": "PartiPrompts.tsv", "partiprompts": "PartiPrompts.tsv", "geneval": "geneval_prompts.jsonl"}
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "prompts"


def load_prompts(spec: str, max_prompts: int | None = None) -> tuple[list[str], list[dict] | None]:
    """FILE (.txt one per line, .jsonl with "prompt", .tsv with a "Prompt" column), "shapes" for
    the shipped ShapesWorld GenEval-style set, "parti" (PartiPrompts) or "geneval" (GenEval's
    prompts), or a literal prompt. -> (prompts, metadata or None: one dict per prompt, a .tsv's
    other columns in lower case)."""
    entries = None
    path = ASSETS / SHIPPED[spec.lower()] if spec.lower() in SHIPPED else Path(spec).expanduser()
    if spec.lower() in SHAPES_ALIASES:
        from rewardflow.utils.plugins import SHAPES_PROMPT_SET, load_object

        entries = load_object(SHAPES_PROMPT_SET)()
        prompts = [e["prompt"] for e in entries]
    elif path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        if path.suffix == ".jsonl":
            entries = []
            for n, line in enumerate(lines, 1):
                if line.strip():
                    rec = json.loads(line)
                    if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str):
                        raise ValueError(f'{path}:{n}: each JSONL line needs a string "prompt" field')
                    entries.append(rec)
            prompts = [e["prompt"] for e in entries]
        elif path.suffix == ".tsv":
            head = lines[0].split("\t") if lines else []
            if "Prompt" not in head:
                raise ValueError(f"{path}: a .tsv prompt file needs a header with a 'Prompt' column")
            rows = [dict(zip(head, row.split("\t"))) for row in lines[1:] if row.strip()]
            entries = [{"prompt": r["Prompt"], **{k.lower(): v for k, v in r.items() if k != "Prompt"}} for r in rows]
            prompts = [e["prompt"] for e in entries]
        else:
            prompts = [line.strip() for line in lines if line.strip()]
    elif path.suffix in (".txt", ".jsonl", ".tsv"):
        raise FileNotFoundError(f"prompt file not found: {path}")
    else:
        prompts = [spec]
    if max_prompts is not None:
        prompts = prompts[:max_prompts]
        entries = entries[:max_prompts] if entries is not None else None
    if not prompts:
        raise ValueError(f"no prompts in {spec!r}")
    return prompts, entries
