"""Long work shows progress on stderr when it is a terminal, and nothing when it is not; a busy
machine's refusal says the time the whole measurement took, not only the back-off."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from test_cli_table import TINY  # conv, global pool, linear at 16 px: 3 blocks to time, and the network

pytest.importorskip("torch")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture
def terminal(monkeypatch):
    """stderr taken for a terminal: the bars are drawn (with terminal control codes) into the captured stderr."""
    from scalelab import progress

    monkeypatch.setattr(progress, "shown", lambda: True)


@pytest.fixture
def busy_machine(monkeypatch):
    """Every attempt takes 56.25 s of a stand-in clock and sees 1.5 other CPUs busy (the limit is 0.5);
    the back-off waits 1 + 2 + 4 s of the same clock: 4 x 56.25 + 7 = 232 s in all."""
    from scalelab.analysis import measure, noise

    now = [0.0]

    def timed(fns, device, on_round=lambda: None, **_):
        for _ in range(10):
            now[0] += 56.25 / 10
            on_round()
        return {name: measure.Timing(1.0, 1.0, 1.0, 50) for name in fns}

    class Window:
        other_cpus = 1.5

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(noise, "_clock", lambda: now[0])
    monkeypatch.setattr(noise, "_sleep", lambda s: now.__setitem__(0, now[0] + s))
    monkeypatch.setattr(measure, "time_interleaved", timed)
    monkeypatch.setattr(noise, "LoadWindow", Window)


def test_a_refused_measurement_says_how_long_it_took_and_showed_each_wait(tmp_path, terminal, busy_machine):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    result = run("analyze", spec, "--measure", "--no-cache")
    assert result.exit_code == 2, result.output
    assert ("after 4 attempts in 232 s (7 s of it waiting between attempts)" in result.stderr), result.stderr
    for attempt in (1, 2, 3, 4):  # 3 blocks and the network timed together, in rounds
        assert f"measuring tiny: 4 timings, attempt {attempt}, rounds" in result.stderr
    for attempt, wait in ((2, 1), (3, 2), (4, 4)):
        assert (f"measuring tiny: other processes kept 1.50 CPUs busy (limit 0.5); attempt {attempt} of 4 in "
                f"{wait} s") in result.stderr
    from scalelab.analysis.measure import Rounds

    assert f"10/{Rounds().max_rounds}" in result.stderr  # the rounds run of the most an attempt may take


def test_piped_stderr_gets_no_progress(tmp_path, busy_machine):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    result = run("analyze", spec, "--measure", "--no-cache", "--allow-noisy", "-f", "json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_verify_and_import_show_what_they_are_doing(tmp_path, terminal):
    verified = run("verify", "lenet5")
    assert verified.exit_code == 0, verified.output
    assert "verifying lenet5: building the module" in verified.stderr
    model = tmp_path / "net.py"
    model.write_text("import torch\n\ndef net():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())\n")
    imported = run("import", f"{model}:net", "-r", "16")
    assert imported.exit_code == 0, imported.output
    assert f"importing {model}:net: building, capturing with torch.export" in imported.stderr
    assert imported.stdout.startswith("name: ")  # the spec itself stays clean


def test_calibrate_says_each_wait_for_a_quiet_machine(terminal, monkeypatch):
    """Calibrate waits for other processes to leave the CPUs before measuring: each wait is a line
    on the terminal, and the refusal says the time spent (4 checks of the stand-in clock's 0.5 s, 7 s
    of waits)."""
    from scalelab.analysis import noise

    now = [0.0]

    def busy(seconds=0.5):
        now[0] += seconds
        return 1.5

    monkeypatch.setattr(noise, "idle_load", busy)
    monkeypatch.setattr(noise, "_clock", lambda: now[0])
    monkeypatch.setattr(noise, "_sleep", lambda s: now.__setitem__(0, now[0] + s))
    result = run("calibrate")
    assert result.exit_code == 2, result.output
    waits = [line for line in result.stderr.splitlines() if line.startswith("calibrate: other processes")]
    assert waits == [f"calibrate: other processes kept 1.50 CPUs busy (limit 0.5); attempt {n} of 4 in {w} s"
                     for n, w in ((2, 1), (3, 2), (4, 4))]
    assert "after 4 attempts in 9 s (7 s of it waiting between attempts)" in result.stderr
