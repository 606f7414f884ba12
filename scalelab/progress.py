"""Progress of long work (measuring, verifying, importing) on stderr, shown only when stderr is a
terminal, as `scale` shows its bar: the step under way, the count where there is one and the time
spent. Piped or redirected, nothing is printed, so a script's stderr keeps only messages. rich is
imported only when a bar is shown."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, Optional


def shown() -> bool:
    return sys.stderr.isatty()


class Steps:
    """What the work tells its bar: ``say`` the step under way, ``advance`` the count."""

    def __init__(self, bar=None, task=None):
        self._bar, self._task = bar, task

    def say(self, text: str, total: Optional[int] = None, restart: bool = False) -> None:
        if self._bar is not None:
            if restart:
                self._bar.reset(self._task, total=total)
            self._bar.update(self._task, description=text, **({"total": total} if total is not None else {}))
            self._bar.refresh()

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)


@contextmanager
def progress(what: str, total: Optional[int] = None) -> Iterator[Steps]:
    """A bar (with ``total``) or a spinner (without) on stderr while the block runs, removed after it."""
    if not shown():
        yield Steps()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True, force_terminal=True),
                  transient=True) as bar:
        yield Steps(bar, bar.add_task(what, total=total))
