"""Running the CLI in-process from tests, and what every refused command must look like."""

import signal
from contextlib import contextmanager

from typer.testing import CliRunner

runner = CliRunner()


def invoke(*args):
    from scalelab.cli import app

    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result, *fragments):
    """Bad input: exit code 2, no traceback, and the message names each fragment."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@contextmanager
def time_bound(seconds: int = 60):
    """Fail the code run inside with a TimeoutError after ``seconds`` (SIGALRM): generous, as a
    refusal takes milliseconds and the bugs this guards against hung for minutes."""
    def expired(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
