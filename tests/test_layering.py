"""The package's layers: each top-level subpackage imports only from those before it in LAYERS,
eagerly or inside a function (docs/ARCHITECTURE.md). An import running up the order fails here."""

import ast
from pathlib import Path

import rewardflow

LAYERS = [
    {"utils", "flow"},
    {"models"},
    {"data"},
    {"rewards"},
    {"sampling"},
    {"eval"},
    {"training"},
    {"shapes"},
    {"studies"},
    {"demo"},
    {"experiments"},
    {"ui"},
    {"commands"},
    {"cli"},
]
RANK = {pkg: i for i, group in enumerate(LAYERS) for pkg in group}
ROOT = Path(rewardflow.__file__).parent


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out |= {n.split(".")[1] for n in names if n.startswith("rewardflow.") and n.count(".") >= 1}
    return out


def test_every_subpackage_has_a_layer():
    tops = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()} | {"cli"}
    assert tops <= set(RANK), f"give {sorted(tops - set(RANK))} a place in LAYERS"


def test_no_import_runs_up_the_layers():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        top = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if top not in RANK:
            continue
        for dst in _imports(path):
            if dst in RANK and dst != top and RANK[dst] > RANK[top]:
                bad.append(f"{rel} imports rewardflow.{dst}")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_the_check_sees_function_local_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "import os\n\ndef g():\n    from rewardflow.demo.run import run_demo\n    import rewardflow.eval.speedup\n"
    )
    assert _imports(f) == {"demo", "eval"}


def test_the_core_runs_without_shapesworld(monkeypatch):
    """The core names ShapesWorld only through utils.plugins: with another name there (a world
    that is not installed), the trainer's default prompts fall back to a fixed list."""
    from rewardflow.training.callbacks import _FALLBACK_PROMPTS, default_prompts

    assert default_prompts(2) != list(_FALLBACK_PROMPTS[:2])  # the built-in world's captions
    monkeypatch.setattr("rewardflow.utils.plugins.SHAPES_TRAINING_PROMPTS", "no_such_world.prompts:make")
    assert default_prompts(2) == list(_FALLBACK_PROMPTS[:2])
