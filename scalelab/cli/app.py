"""The typer application and what every command shares: error handling and safe output files.

One convention for every command: an error is printed on stderr as ``error: <message>`` (one line per
problem; click's usage errors too) with exit code 2; every file a command writes is named on stderr
as ``wrote <path>``, one line each, once it is in place; stdout carries only the result itself."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from typer.core import TyperGroup

from scalelab import __version__
from scalelab.errors import ScalelabError
from scalelab.limits import quote
from scalelab.output import write_atomic

PREFIX = "error: "


class _PrefixedErrors(TyperGroup):
    """click's own errors (an unknown option, a value its type refuses) take scalelab's prefix:
    click would print ``Error:``, scalelab's messages ``error:``."""

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None,
             complete_var: Optional[str] = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        given = (args, prog_name, complete_var)
        if not standalone_mode:
            return super().main(*given, standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
        try:
            # the exit code of a typer.Exit
            code = super().main(*given, standalone_mode=False, windows_expand_args=windows_expand_args, **extra)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        except typer.TyperException as exc:  # click's usage errors (typer's own copy of click)
            _show(exc)
            sys.exit(getattr(exc, "exit_code", 1))
        sys.exit(code if isinstance(code, int) else 0)


def _show(exc: typer.TyperException) -> None:
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:  # a usage error: how the command is called, then the problem
        hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help." if ctx.help_option_names else ""
        typer.echo(ctx.get_usage() + ("\n" + hint if hint else "") + "\n", err=True)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    for line in message.splitlines() or [""]:
        typer.echo(PREFIX + line, err=True)


class _Group(_PrefixedErrors):
    """``--version`` stands alone: a command or value after it is refused, not ignored (an eager
    option would print the version and exit before the rest of the line is read)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        _, extra, _ = self.make_parser(ctx).parse_args(args=list(args))  # the command and its arguments
        rest = super().parse_args(ctx, args)
        if ctx.params.get("version"):
            if extra:
                ctx.fail(f"--version takes no value and no command, got {quote(' '.join(extra), 40)}")
            typer.echo(f"scalelab {__version__}")
            ctx.exit()
        return rest


app = typer.Typer(
    cls=_Group,
    name="scalelab",
    help="Per-block cost analysis and compound scaling of convolutional networks described in YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: option names never cut, flags without a '<bool>' type, and no rich import
    rich_markup_mode=None,
)

EXIT_BAD_INPUT = 2


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Per-block cost analysis and compound scaling of convolutional networks described in YAML."""


def fail(message: str) -> "typer.Exit":
    """Print one clear message to stderr and leave with the bad-input exit code."""
    for line in message.splitlines() or [""]:  # several located problems: one line each
        typer.echo(PREFIX + line, err=True)
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


def wrote(path: Path) -> None:
    """Name a file the command has put in place: ``wrote <path>`` on stderr, one line each."""
    typer.echo(f"wrote {path}", err=True)


def emit(text: str, output: Optional[Path]) -> None:
    """Print ``text``, or write it to ``output`` atomically (no partial file if anything fails)."""
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    write_atomic(output, text.encode("utf-8"))
    wrote(output)
