"""Small modules and functions: no function over ~60 lines and no module over ~400 in the
package (a little slack, so a docstring line does not fail the build; split before that)."""

import ast
from pathlib import Path

import rewardflow

ROOT = Path(rewardflow.__file__).parent
MAX_FUNCTION, MAX_MODULE = 65, 420


def _sizes():
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text()
        yield path, len(text.splitlines()), ast.parse(text)


def test_no_long_modules():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p, n, _ in _sizes() if n > MAX_MODULE]
    assert not long, "split these modules: " + "; ".join(long)


def _length(node) -> int:
    return node.end_lineno - node.lineno + 1


def test_no_long_functions():
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    long = [
        f"{p.relative_to(ROOT)}:{node.lineno} {node.name}: {_length(node)} lines"
        for p, _, tree in _sizes()
        for node in ast.walk(tree)
        if isinstance(node, functions) and _length(node) > MAX_FUNCTION
    ]
    assert not long, "split these functions: " + "; ".join(long)
