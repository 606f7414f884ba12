"""Running the CLI in-process from tests, and what every refused command must look like."""

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
