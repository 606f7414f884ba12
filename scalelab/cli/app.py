"""The typer application and what every command shares: error handling and safe output files."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from scalelab.errors import ScalelabError
from scalelab.output import write_atomic

app = typer.Typer(
    name="scalelab",
    help="Per-block cost analysis and compound scaling of convolutional networks described in YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: option names never cut, flags without a '<bool>' type, and no rich import
    rich_markup_mode=None,
)

EXIT_BAD_INPUT = 2


def _print_version(value: bool) -> None:
    if value:
        from scalelab import __version__

        typer.echo(f"scalelab {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Per-block cost analysis and compound scaling of convolutional networks described in YAML."""


def fail(message: str) -> "typer.Exit":
    """Print one clear message to stderr and leave with the bad-input exit code."""
    for line in message.splitlines() or [""]:  # several located problems: one line each
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def friendly(command: Callable) -> Callable:
    """Turn ScalelabError into one message and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ScalelabError as exc:
            raise fail(str(exc)) from None

    return wrapper


def emit(text: str, output: Optional[Path]) -> None:
    """Print ``text``, or write it to ``output`` atomically (no partial file if anything fails)."""
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    write_atomic(output, text.encode("utf-8"))
