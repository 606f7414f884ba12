"""`scalelab scale --workers N`: N-1 more processes of the same command on this machine, working on
the same study. Each runs trials only (``--worker-of PID``); this process runs trials too, then
waits for them and writes the report. They run in their own session, so a Ctrl-C reaches this
process alone, which passes each one on: the first stops every worker after its running trial,
a second stops them all at once.

The workers start together: each helper says on its standard output that its study is open, then
waits for its standard input to close; this process closes them all once every helper is ready (or
has exited, or after ``START_WAIT_S``). Otherwise the process that is already running would do the
first trials alone while its helpers are still starting, and a short search would leave some idle."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from typing import IO, Callable, Optional

from scalelab.errors import ScalelabError

#: the program's own arguments, set by ``scalelab.cli.main`` (None when the CLI runs in-process)
PROGRAM_ARGS: Optional[list[str]] = None
#: the longest the process that started the helpers waits for them to be ready (seconds)
START_WAIT_S = 120.0
READY = b"ready\n"


class LocalWorkers:
    def __init__(self, extra: int):
        self.extra = extra
        self.procs: list[subprocess.Popen] = []

    def check(self, storage: str) -> None:
        if self.extra and storage == "memory":
            raise ScalelabError("--workers needs a database storage that the workers share (--storage sqlite:///"
                                "FILE or postgresql://...); 'memory' is private to one process")
        if self.extra and PROGRAM_ARGS is None:
            raise ScalelabError("--workers starts copies of the scalelab command; run it as a program, not in-process")

    def start(self) -> None:
        if not self.extra:
            return
        assert PROGRAM_ARGS is not None  # checked when the pool was made
        args = [sys.executable, "-m", "scalelab", *PROGRAM_ARGS, "--workers", "1", "--worker-of", str(os.getpid())]
        for _ in range(self.extra):
            self.procs.append(subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                               start_new_session=True))

    def start_together(self, stop_requested: Callable[[], bool], wait_s: float = START_WAIT_S) -> None:
        """Wait until every helper's study is open (a ``READY`` line, or its end of output if it
        failed first), then let them all start: their standard input is closed."""
        waiting = {_stdout(proc).fileno(): proc for proc in self.procs}
        deadline = time.monotonic() + wait_s
        while waiting and not stop_requested() and time.monotonic() < deadline:
            readable, _, _ = select.select(list(waiting), [], [], 0.1)
            for fd in readable:
                os.read(fd, len(READY))  # the line, or b"" from a helper that exited
                waiting.pop(fd)
        self._release()

    def _release(self) -> None:
        """Let every helper start (or stop, once interrupted): nothing more is said to or heard from them."""
        for proc in self.procs:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()

    def interrupt(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass

    def wait(self) -> list[str]:
        """Wait for every worker; a line for each that failed (their trials are run by the others)."""
        self._release()  # helpers still at the start line (this process failed first) stop there
        notes = []
        for proc in self.procs:
            code = proc.wait()
            if code not in (0, 130):
                notes.append(f"note: worker process {proc.pid} exited with code {code}; "
                             f"the study's remaining trials were run by the other workers")
        return notes


def wait_for_start() -> None:
    """A helper: say that the study is open, and wait for the process that started it to let all
    the workers start (standard input closed, as it is when that process is gone)."""
    out = sys.stdout.buffer
    try:
        out.write(READY)
        out.flush()
    except OSError:  # the process that started this one stopped listening: start now
        pass
    sys.stdin.buffer.read()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, sys.stdout.fileno())  # nothing more is read from this pipe
    os.close(devnull)


def _stdout(proc: subprocess.Popen) -> IO[bytes]:
    assert proc.stdout is not None  # every helper is started with stdout=PIPE
    return proc.stdout
