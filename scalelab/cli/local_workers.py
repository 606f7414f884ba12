"""`scalelab scale --workers N`: N-1 more processes of the same command on this machine, working on
the same study. Each runs trials only (``--worker-of PID``); this process runs trials too, then
waits for them and writes the report. They run in their own session, so a Ctrl-C reaches this
process alone, which passes each one on: the first stops every worker after its running trial,
a second stops them all at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Optional

from scalelab.errors import ScalelabError

#: the program's own arguments, set by ``scalelab.cli.main`` (None when the CLI runs in-process)
PROGRAM_ARGS: Optional[list[str]] = None


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
        args = [sys.executable, "-m", "scalelab", *PROGRAM_ARGS, "--workers", "1", "--worker-of", str(os.getpid())]
        for _ in range(self.extra):
            self.procs.append(subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               start_new_session=True))

    def interrupt(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass

    def wait(self) -> list[str]:
        """Wait for every worker; a line for each that failed (their trials are run by the others)."""
        notes = []
        for proc in self.procs:
            code = proc.wait()
            if code not in (0, 130):
                notes.append(f"note: worker process {proc.pid} exited with code {code}; "
                             f"the study's remaining trials were run by the other workers")
        return notes
