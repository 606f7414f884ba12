"""The typer application and what every command shares: error handling and safe output files.

One convention for every command: an error is printed on stderr as ``error: <message>`` (one line per
problem; click's usage errors too) with exit code 2; every file a command writes is named on stderr
as ``wrote <path>``, one line each, once it is in place; stdout carries only the result itself."""

from __future__ import annotations

import functools
import sys
import textwrap
from collections.abc import Iterator, MutableMapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Optional

import typer
import typer.main
from typer.core import TyperGroup

from scalelab import __version__
from scalelab.cli.commands import COMMANDS
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


class _Commands(MutableMapping[str, Any]):
    """The group's commands by name (click commands): every command of the table
    (``cli.commands.COMMANDS``) is listed, and its module imported the first time the command is
    looked up, so that a command loads only what it uses and `scalelab --help` none of them."""

    def __init__(self, built: MutableMapping[str, Any]):
        self._built = dict(built)  # commands already made (their modules imported)
        self._names = list(dict.fromkeys([*COMMANDS, *built]))

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in COMMANDS:
                raise KeyError(name)
            self._built[name] = _load(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command
        self._names += [] if name in self._names else [name]

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)


def _load(name: str) -> Any:
    """Import the module of command ``name`` (it registers the command on ``app``) and make its
    click command as typer makes every command."""
    import_module(f"scalelab.cli.{COMMANDS[name][0]}")  # importlib: the table names the module
    infos = [i for i in app.registered_commands
             if i.callback is not None and (i.name or typer.main.get_command_name(i.callback.__name__)) == name]
    if not infos:
        raise RuntimeError(f"scalelab.cli.{COMMANDS[name][0]} declares no command '{name}' (cli/commands.py)")
    return typer.main.get_command_from_info(infos[0], pretty_exceptions_short=app.pretty_exceptions_short,
                                            rich_markup_mode=app.rich_markup_mode)


class _Group(_PrefixedErrors):
    """The commands load on use (``_Commands``), and their one-line help comes from the table.
    ``--version`` stands alone: a command or value after it is refused, not ignored (an eager
    option would print the version and exit before the rest of the line is read)."""

    def __init__(self, **attrs: Any):
        super().__init__(**attrs)
        self.commands = _Commands(self.commands)

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)  # their names only: typer's own would load every command

    def format_commands(self, ctx, formatter) -> None:
        """click's command list, with each command's help from the table: no command module loads."""
        rows = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                rows.append((name, COMMANDS[name][1]))
            elif not self.commands[name].hidden:  # a command registered outside the table
                rows.append((name, self.commands[name].get_short_help_str(10**6)))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)  # click's room for the help
        with formatter.section("Commands"):
            formatter.write_dl([(name, _shortened(text, limit)) for name, text in rows])

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        _, extra, _ = self.make_parser(ctx).parse_args(args=list(args))  # the command and its arguments
        rest = super().parse_args(ctx, args)
        if ctx.params.get("version"):
            if extra:
                ctx.fail(f"--version takes no value and no command, got {quote(' '.join(extra), 40)}")
            typer.echo(f"scalelab {__version__}")
            ctx.exit()
        return rest


def _shortened(text: str, limit: int) -> str:
    """A one-line help cut to ``limit`` characters at a word, as click cuts it."""
    if len(text) <= limit:
        return text
    return "..." if limit < 3 else textwrap.shorten(text, limit, placeholder="...", break_on_hyphens=False)


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
