"""Ctrl-C at any moment: exit code 130 and one line saying what was kept; never a traceback, never a
signal that goes unnoticed.

Commands say what a Ctrl-C would leave behind as they go (``keep``). Outside a search, Ctrl-C stops
at once (``Interrupted``, caught where the program ends). During a search (``searching``) the first
Ctrl-C lets the running trial finish and stops the search, so the storage stays consistent; a second
one stops the process at once, as a kill would: the trial under way is left to the heartbeat check,
which queues it again. Only the standard library is imported here: it is in place before anything
slow is imported.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

EXIT_INTERRUPTED = 130
#: a Ctrl-C during a search that has not stopped after this long is told what is happening
NOTICE_AFTER_S = 1.0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C outside a search."""


NOTHING = "nothing was written"


class _State:
    kept = NOTHING
    written: list[str] = []  # output files completed so far (each written whole, see scalelab.output)
    staging: list[str] = []  # folders of files not yet in place (``output.FileSet``): never named as kept
    hit = False  # a Ctrl-C arrived (an exit 0 after it would swallow it)
    printed = False
    silent = False  # a helper process, which never prints the line
    search: Optional["Search"] = None


_state = _State()


def keep(text: str) -> None:
    """What a Ctrl-C from now on leaves behind, e.g. "the study's trials are kept in X"."""
    _state.kept = text


def reset() -> None:
    """A command starts: nothing kept yet (in-process callers run several commands in one process)."""
    _state.kept, _state.written, _state.hit, _state.printed = NOTHING, [], False, _state.silent
    _state.staging = []


def wrote(path) -> None:
    """An output file was written (whole): the line will name it."""
    _state.written.append(str(path))


def staging(folder) -> None:
    """Files written under ``folder`` are drafts, moved into place (and named then) or deleted."""
    _state.staging.append(os.path.join(str(folder), ""))


def _kept_files() -> list[str]:
    """The files named as written that are whole where they were written when the line is printed:
    a draft in a staging folder is deleted, or renamed and named again, by then."""
    names = [p for p in _state.written if not any(p.startswith(s) for s in _state.staging)]
    return [p for p in dict.fromkeys(names) if os.path.isfile(p)]


def silence() -> None:
    """A helper process: exit 130 on Ctrl-C without the line (the process that started it says it)."""
    _state.silent = _state.printed = True


def interrupted() -> bool:
    return _state.hit


def _handler(signum, frame) -> None:
    _state.hit = True
    if _state.search is not None:
        _state.search.on_ctrl_c()
        return
    raise Interrupted


def install() -> None:
    """Take over SIGINT (main thread only; elsewhere Python's default stays)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def report_and_exit() -> "SystemExit":
    """Print the one line, once, and leave with 130 (no further Ctrl-C can interrupt this)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _state.printed:
        _state.printed = True
        _say(f"interrupted: {_line()}")
    raise SystemExit(EXIT_INTERRUPTED)


def _line() -> str:
    written = _kept_files()
    if not written:
        return _state.kept
    names = ", ".join(written[:4]) + (f" and {len(written) - 4} more" if len(written) > 4 else "")
    kept = "" if _state.kept == NOTHING else f"{_state.kept}; "
    return f"{kept}files written, each whole: {names}"


def _say(line: str) -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class Search:
    """The search phase: ``requested()`` turns true at the first Ctrl-C; ``callback`` stops the
    Optuna study after the running trial; ``forward`` (if set) passes each Ctrl-C on to the local
    worker processes."""

    def __init__(self, forward: Optional[Callable[[], None]] = None):
        self.count = 0
        self.forward = forward
        self._timer: Optional[threading.Timer] = None

    def requested(self) -> bool:
        return self.count > 0

    def callback(self, study, trial) -> None:
        if self.count:
            study.stop()

    def on_ctrl_c(self) -> None:
        self.count += 1
        if self.forward is not None:
            self.forward()
        if self.count == 1:
            if not _state.printed:
                self._timer = threading.Timer(NOTICE_AFTER_S, _say, ["stopping after the running trial "
                                                                     "(Ctrl-C again to stop at once)"])
                self._timer.daemon = True
                self._timer.start()
            return
        self.cancel()
        if not _state.printed:
            _state.printed = True
            _say(f"interrupted: {_line()}; the trial under way was dropped and is run again next time")
        os._exit(EXIT_INTERRUPTED)  # like a kill: no cleanup can be interrupted half-way

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


@contextmanager
def searching(forward: Optional[Callable[[], None]] = None) -> Iterator[Search]:
    """The first Ctrl-C inside stops the search after the running trial instead of raising."""
    search = Search(forward)
    previous, _state.search = _state.search, search
    main_thread = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main_thread else None
    install()  # also when run in-process, without ``main``
    try:
        yield search
    finally:
        search.cancel()
        _state.search = previous
        if main_thread and handler is not None:
            signal.signal(signal.SIGINT, handler)


def main(run: Callable[[], None]) -> None:
    """Run the program; turn a Ctrl-C however it surfaces into the one line and exit code 130."""
    try:
        run()
    except KeyboardInterrupt:
        report_and_exit()
    except SystemExit as exc:
        if _state.hit or exc.code == EXIT_INTERRUPTED:  # typer turns a KeyboardInterrupt into a silent exit 130
            report_and_exit()
        raise
    if _state.hit:
        report_and_exit()
