"""Ctrl-C (SIGINT sent to a real `scalelab scale` process) at start-up, mid-search, while the report
is written, and twice: exit code 130, no traceback, and one line saying what was kept."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def start(tmp_path: Path, trials: int, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "scalelab", "scale", "--budget", "400MFLOPs", "--method", "direct",
            "--extrapolation", "allow", "--trials", str(trials), "--storage", f"sqlite:///{tmp_path / 's.db'}",
            "--study", "k", "--report-dir", str(tmp_path / "r"), "--format", "json", *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=ENV)


def complete(tmp_path: Path) -> int:
    try:  # read-only: the run itself creates the schema
        with sqlite3.connect(f"file:{tmp_path / 's.db'}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_until(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def interrupted_line(proc: subprocess.Popen) -> str:
    """The process's exit after Ctrl-C: code 130, no traceback, and the one line saying what was kept."""
    out, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if line.strip()]
    kept = [line for line in lines if line.startswith("interrupted:")]
    assert len(kept) == 1 and lines[-1] == kept[0], text
    assert all(line.startswith(("interrupted:", "stopping after")) for line in lines), text
    assert out == b""  # no half report on stdout
    return kept[0]


def loaded(proc: subprocess.Popen, library: str) -> bool:
    """Whether the process has mapped ``library`` (it is importing the command's dependencies)."""
    try:
        return library in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


def test_ctrl_c_at_start_up(tmp_path):
    proc = start(tmp_path, 50)
    wait_until(lambda: loaded(proc, "_yaml") or loaded(proc, "pydantic_core"), proc)
    proc.send_signal(signal.SIGINT)
    assert interrupted_line(proc) == "interrupted: nothing was written"
    assert not (tmp_path / "r").exists()


def test_ctrl_c_mid_search_keeps_the_finished_trials(tmp_path):
    proc = start(tmp_path, 100000, "--no-charts")
    wait_until(lambda: complete(tmp_path) >= 3, proc)
    proc.send_signal(signal.SIGINT)
    line = interrupted_line(proc)
    assert f"kept in sqlite:///{tmp_path / 's.db'}" in line and "run the same command again" in line
    study = optuna.load_study(study_name="k", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))  # the running trial finished
    assert not list((tmp_path / "r").glob("k*"))  # no report of an unfinished study


def test_ctrl_c_twice_stops_at_once(tmp_path):
    proc = start(tmp_path, 100000, "--no-charts")
    wait_until(lambda: complete(tmp_path) >= 3, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    line = interrupted_line(proc)
    assert "kept in sqlite:///" in line


def test_ctrl_c_while_the_report_is_written(tmp_path):
    """With charts (seconds of drawing) the report phase is long enough to be hit."""
    proc = start(tmp_path, 20)
    wait_until(lambda: complete(tmp_path) >= 20, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    line = interrupted_line(proc)
    assert f"kept in sqlite:///{tmp_path / 's.db'}" in line, line
    assert not list((tmp_path / "r").glob("k*.tmp")) and not list((tmp_path / "r").glob(".k*"))  # no partial file
    rerun = start(tmp_path, 20, "--no-charts")
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()[-3000:]
    assert (tmp_path / "r" / "k.json").exists()


def test_ctrl_c_after_a_chart_is_drafted_names_only_files_in_place(tmp_path, monkeypatch, capsys):
    """A Ctrl-C while the report set is drawn (into its staging folder): the drafts are deleted on
    the way out, so the line names none of them, only what exists whole (the study)."""
    from scalelab import interrupts
    from scalelab.cli import app, scale_search

    drawn = []

    def draw_then_ctrl_c(data, path):
        real_draw(data, path)
        drawn.append(Path(path))
        os.kill(os.getpid(), signal.SIGINT)  # the real signal, through scalelab's handler

    real_draw = scale_search.draw_scaling_curves
    monkeypatch.setattr(scale_search, "draw_scaling_curves", draw_then_ctrl_c)  # the name the command calls
    handler = signal.getsignal(signal.SIGINT)
    args = ["scale", "--budget", "400MFLOPs", "--method", "direct", "--extrapolation", "allow", "--trials", "12",
            "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "k", "--report-dir", str(tmp_path / "r")]
    try:
        interrupts.install()
        with pytest.raises(SystemExit) as stopped:
            interrupts.main(lambda: app(args, prog_name="scalelab"))
    finally:
        signal.signal(signal.SIGINT, handler)
    assert stopped.value.code == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert len(drawn) == 1 and drawn[0].parent.name.startswith(".scalelab-staging-")  # a draft, drawn whole
    assert not drawn[0].exists() and not (tmp_path / "r").exists()  # deleted, and the folder the run made
    assert line == f"interrupted: the study's 12 trials are kept in sqlite:///{tmp_path / 's.db'}; the report was " \
                   "not finished: run the same command again to write it", line
