"""scalelab imports its own modules at the top of a module, where readers and tools follow the flow.
An import of one inside a function is kept only to defer a heavy third-party library it brings
(torch, numpy, networkx, ...) or for a measured start-up path, each with its reason in a comment;
their number is held here."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scalelab"
LIMIT = 40


def late_own_imports(source: str) -> int:
    """Imports of scalelab's own modules (absolute or relative) inside functions of ``source``."""
    count = 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            count += sum(1 for s in ast.walk(node) if isinstance(s, ast.ImportFrom)
                         and ((s.module or "").startswith("scalelab") or s.level > 0))
    return count


def test_the_count_sees_absolute_and_relative_imports_inside_functions_only():
    source = ("from scalelab.errors import ScalelabError\nimport json\n"
              "def f():\n    from scalelab.spec import load_spec\n    import torch\n    from numpy import array\n"
              "class C:\n    async def h(self):\n        from . import units\n"
              "        if True:\n            from scalelab.graph import resolve\n")
    assert late_own_imports(source) == 3  # load_spec, units, resolve


def test_own_module_imports_inside_functions_stay_few():
    counts = Counter({str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
                      if (n := late_own_imports(p.read_text(encoding="utf-8")))})
    listing = ", ".join(f"{path} {n}" for path, n in counts.most_common())
    assert sum(counts.values()) <= LIMIT, f"{sum(counts.values())} own-module imports inside functions: {listing}"
