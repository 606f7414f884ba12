"""The command line: one file per command, each imported only when its command runs (the table in
``cli/commands.py`` lists them for `scalelab --help`); heavy libraries load inside the commands."""

import os
import sys

from scalelab import interrupts

# pydantic looks for plugins in every installed distribution's entry points before it builds the
# first model (some 10 ms with a large environment); no command uses one. A user's own setting wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

if "--worker-of" in sys.argv:  # a `scale --workers` helper: the process that started it says what was kept
    interrupts.silence()
interrupts.install()  # before typer's import: a Ctrl-C during start-up exits 130 with one line too
try:
    from scalelab.cli import local_workers  # noqa: E402
    from scalelab.cli.app import app  # noqa: E402
except KeyboardInterrupt:
    interrupts.report_and_exit()


def main() -> None:
    local_workers.PROGRAM_ARGS = sys.argv[1:]  # what `scale --workers` repeats for its worker processes
    interrupts.main(app)


__all__ = ["app", "main"]
