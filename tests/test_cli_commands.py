"""The commands load on use: `scalelab --help` lists every command from the table in cli/commands.py
without importing any command module, the table agrees with the commands the modules declare, and
a command loads its own module only."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest
import typer.main

import scalelab.cli
from scalelab.cli.commands import COMMANDS

COMMAND_MODULES = {f"scalelab.cli.{module}" for module, _ in COMMANDS.values()}


def _fresh(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _run_and_list_modules(args: list[str]) -> tuple[str, set[str]]:
    """What ``scalelab ARGS`` prints in a fresh interpreter, and the scalelab.cli modules it imported."""
    out = _fresh("import contextlib, io, json, sys\nfrom scalelab.cli import app\nbuf = io.StringIO()\n"
                 "with contextlib.redirect_stdout(buf):\n"
                 f"    try:\n        app({args!r}, prog_name='scalelab', standalone_mode=False)\n    except SystemExit:\n        pass\n"
                 "print(json.dumps([buf.getvalue(), sorted(m for m in sys.modules if m.startswith('scalelab.cli'))]))")
    text, modules = json.loads(out.splitlines()[-1])
    return text, set(modules)


def test_help_lists_every_command_with_its_help_and_loads_none():
    text, modules = _run_and_list_modules(["--help"])
    listed = text.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == list(COMMANDS)
    for line, (_, summary) in zip(listed, COMMANDS.values()):
        name, shown = line.split(None, 1)
        # click's 80-column help cuts a long line at a word and ends it with '...'
        assert summary.startswith(shown.removesuffix("...").rstrip()) and len(shown) <= 80, (name, shown)
    assert modules & COMMAND_MODULES == set()


def test_the_table_agrees_with_the_commands_the_modules_declare():
    for info in pkgutil.iter_modules(scalelab.cli.__path__):
        importlib.import_module(f"scalelab.cli.{info.name}")  # every module that could declare a command
    app = scalelab.cli.app
    declared = {i.name or typer.main.get_command_name(i.callback.__name__): i.callback.__module__
                for i in app.registered_commands if i.callback is not None}
    assert declared == {name: f"scalelab.cli.{module}" for name, (module, _) in COMMANDS.items()}
    group = typer.main.get_command(app)
    for name, (_, summary) in COMMANDS.items():
        assert group.commands[name].get_short_help_str(10**6) == summary, name  # the docstring's first sentence


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_command_loads_its_own_module_only(name):
    text, modules = _run_and_list_modules([name, "--help"])
    assert f"Usage: scalelab {name} [OPTIONS]" in " ".join(text.split())
    assert modules & COMMAND_MODULES == {f"scalelab.cli.{COMMANDS[name][0]}"}


def test_an_unknown_command_is_refused_with_the_nearest_names():
    result = subprocess.run([sys.executable, "-m", "scalelab", "zoom"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == "error: No such command 'zoom'. Did you mean 'zoo'?"
