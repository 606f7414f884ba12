"""The code stays readable in the units the project holds itself to: no function over 60 lines
and no module over 400 (one responsibility each)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scalelab"
MODULES = sorted(PACKAGE.rglob("*.py"))


def test_no_function_is_longer_than_60_lines():
    long = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in MODULES for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert not long, "functions over 60 lines: " + ", ".join(long)


def test_no_module_is_longer_than_400_lines():
    long = [f"{path.relative_to(PACKAGE.parent)} ({n} lines)" for path in MODULES
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400]
    assert not long, "modules over 400 lines: " + ", ".join(long)
