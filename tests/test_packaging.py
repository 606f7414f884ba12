"""Packaging: the wheel ships the zoo inside the package, usable by name without the source tree;
the README's set-up commands are the ones `.ci/run` executes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("dist")
    built = list(WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"]))
    assert len(built) == 1
    return Path(built[0])


def test_wheel_contains_the_zoo_and_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "scalelab/specs/resnet50.yaml" in names
    zoo = {Path(n).name for n in names if n.startswith("scalelab/specs/") and n.endswith(".yaml") and n.count("/") == 2}
    assert zoo == {p.name for p in (ROOT / "specs").glob("*.yaml")}
    examples = {Path(n).name for n in names if n.startswith("scalelab/specs/examples/")}
    assert examples == {p.name for p in (ROOT / "specs" / "examples").glob("*.yaml")}  # the notes' worked examples
    assert "scalelab/cli/analyze.py" in names and "scalelab/report/formats.py" in names
    assert "scalelab/report/templates/report.html.j2" in names  # the HTML report's template
    assert not any(n.startswith(("tests/", "benchmarks/", ".venv/")) for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "scalelab = scalelab.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_layout_finds_the_zoo_by_name(wheel, tmp_path):
    """Unpacked as an installer would lay it out, away from the source tree, `analyze resnet50` works."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = ("import scalelab.spec.load as l, sys; print(l.zoo_dir()); "
            "from scalelab.cli import app; app(['analyze', 'resnet50', '-o', 'r.html'], standalone_mode=False); "
            "app(['analyze', 'resnet50', '-f', 'json'])")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    zoo_dir, report = result.stdout.split("\n", 1)
    assert Path(zoo_dir).resolve() == (site / "scalelab" / "specs").resolve()
    assert json.loads(report)["total"]["params"] == 25_557_032  # torchvision resnet50
    assert "<table" in (tmp_path / "r.html").read_text()  # the template ships with the package


def _names(node) -> set[str]:
    """Top-level modules an import statement names."""
    import ast

    if isinstance(node, ast.Import):
        return {a.name.split(".")[0] for a in node.names}
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return {node.module.split(".")[0]}
    return set()


def _imported_packages(tree: Path, guarded_only: bool = False) -> set[str]:
    """Top-level third-party modules imported anywhere in ``tree`` (at any depth of the code); with
    ``guarded_only``, those imported in a ``try`` whose ``except ImportError`` handles their absence."""
    import ast

    found = set()
    for path in tree.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not guarded_only:
                found |= _names(node)
            elif isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                    for h in node.handlers):
                found |= {name for statement in node.body for name in _names(statement)}
    # _typeshed: the type checkers' own stubs, imported only under TYPE_CHECKING
    return found - set(sys.stdlib_module_names) - {"scalelab", "__future__", "_typeshed"}


def _distributions(requirements) -> set[str]:
    return {re.split(r"[<>=\[ ]", d)[0].lower().replace("-", "_") for d in requirements}


def test_every_imported_package_is_declared():
    """A package the code imports is a dependency, or an optional one (timm, for timm:NAME): declared
    in an extra and imported only where its absence is handled (one message saying how to install it)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _distributions(project["dependencies"])
    extras = _distributions(d for group in project["optional-dependencies"].values() for d in group)
    distribution = {"yaml": "pyyaml"}  # import name -> distribution name, where they differ
    missing = {m for m in _imported_packages(ROOT / "scalelab") if distribution.get(m, m) not in declared}
    assert missing == {"timm"}
    assert missing <= _imported_packages(ROOT / "scalelab", guarded_only=True) and missing <= extras


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md needs a ```bash block with the set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_the_setup_test_and_check_commands():
    setup, tests, checks = readme_commands()
    assert setup == "pip install -e '.[test]' && scalelab analyze specs/resnet50.yaml"
    assert tests == "python -m pytest"
    assert checks == "ruff check scalelab && mypy"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "SLF001" in config["tool"]["ruff"]["lint"]["select"]  # other libraries' internals stay theirs
    strict = [o for o in config["tool"]["mypy"]["overrides"] if o.get("disallow_untyped_defs")]
    assert strict and set(strict[0]["module"]) == {"scalelab.blocks.*", "scalelab.analysis.*"}
    first_block = (ROOT / "README.md").read_text().index("```bash")
    assert first_block < (ROOT / "README.md").read_text().index("\n## ")  # before any section


def test_ci_script_runs_the_readme_commands():
    script = (ROOT / ".ci" / "run").read_text()
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    assert "README.md" in script and "python3 -m venv" in script
    assert 'CHECKS="${COMMANDS[2]:-}"' in script and 'bash -euo pipefail -c "$CHECKS"' in script
    result = subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
