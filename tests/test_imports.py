"""scalelab imports its own modules at the top of a module, where readers and tools follow the flow.
An import of one inside a function is kept only to defer a heavy third-party library it brings
(torch, matplotlib, optuna, networkx, scipy, numpy), or for a measured start-up path, each with its
reason in a comment. The first kind is recognised here by what the imported module loads at its top
(directly or through scalelab's own modules); the others are counted and their number held."""

from __future__ import annotations

import ast
from collections import Counter
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scalelab"
LIMIT = 40
HEAVY = {"torch", "torchvision", "matplotlib", "optuna", "networkx", "scipy", "numpy", "timm", "fvcore"}


def _path_of(module: str) -> "Path | None":
    base = PACKAGE.parent / Path(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def _top_imports(path: Path) -> list[str]:
    """The modules ``path`` imports at its top level (outside functions and TYPE_CHECKING blocks)."""
    names: list[str] = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]  # a submodule imported by name
    return names


@cache
def brings_heavy(module: str) -> bool:
    """Whether importing ``module`` (one of scalelab's) loads a heavy third-party library."""
    return _brings_heavy(module, set())


def _brings_heavy(module: str, visiting: set) -> bool:
    path = _path_of(module)
    if path is None or module in visiting:
        return False
    visiting.add(module)
    names = _top_imports(path)
    parent = module.rpartition(".")[0]  # importing a submodule runs its package first
    return (any(name.split(".")[0] in HEAVY for name in names)
            or any(_brings_heavy(name, visiting) for name in names if name.startswith("scalelab"))
            or (bool(parent) and _brings_heavy(parent, visiting)))


def _imported(node: ast.ImportFrom, path: Path) -> list[str]:
    if node.level:
        package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level])
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    return [base] + [f"{base}.{a.name}" for a in node.names]


def late_own_imports(source: str, path: "Path | None" = None) -> int:
    """Imports of scalelab's own modules (absolute or relative) inside functions of ``source``, less
    those that only defer a heavy library (known when ``path`` places the source in the package)."""
    count = 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for s in ast.walk(node):
                if not (isinstance(s, ast.ImportFrom) and ((s.module or "").startswith("scalelab") or s.level > 0)):
                    continue
                if path is not None and any(brings_heavy(m) for m in _imported(s, path)):
                    continue
                count += 1
    return count


def test_the_count_sees_absolute_and_relative_imports_inside_functions_only():
    source = ("from scalelab.errors import ScalelabError\nimport json\n"
              "def f():\n    from scalelab.spec import load_spec\n    import torch\n    from numpy import array\n"
              "class C:\n    async def h(self):\n        from . import units\n"
              "        if True:\n            from scalelab.graph import resolve\n")
    assert late_own_imports(source) == 3  # load_spec, units, resolve


def test_a_late_import_that_defers_torch_is_not_counted():
    assert brings_heavy("scalelab.build")  # imports torch at its top
    assert brings_heavy("scalelab.analysis.transfer")  # networkx
    assert not brings_heavy("scalelab.spec")
    assert not brings_heavy("scalelab.errors")
    report = PACKAGE / "report" / "advice.py"
    source = "def f():\n    from scalelab.build import build_module\n    from scalelab.spec import load_spec\n"
    assert late_own_imports(source, report) == 1


def test_own_module_imports_inside_functions_stay_few():
    counts = Counter({str(p.relative_to(PACKAGE.parent)): n for p in sorted(PACKAGE.rglob("*.py"))
                      if (n := late_own_imports(p.read_text(encoding="utf-8"), p))})
    listing = ", ".join(f"{path} {n}" for path, n in counts.most_common())
    assert sum(counts.values()) <= LIMIT, f"{sum(counts.values())} own-module imports inside functions: {listing}"


def test_each_late_import_of_a_heavy_library_says_why():
    """An import kept inside a function to defer torch & co. carries its reason in a comment."""
    silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for s in ast.walk(node):
                if (isinstance(s, ast.ImportFrom) and ((s.module or "").startswith("scalelab") or s.level > 0)
                        and any(brings_heavy(m) for m in _imported(s, path))):
                    around = lines[s.lineno - 2:s.end_lineno]  # the line before, and the import itself
                    if not any("#" in line for line in around):
                        silent.append(f"{path.relative_to(PACKAGE.parent)}:{s.lineno}")
    assert not silent, "late imports with no reason given: " + ", ".join(silent)
