"""A stored study means what it says: run again with a setting that changes its results it is refused
(exit 2, naming the setting, its two values and the two ways forward); a --trials below what is
done is said; the report shows the settings the stored trials were made with. Through the CLI."""

from __future__ import annotations

import json

import optuna
import pytest

from cli_helpers import assert_refused, invoke

BASE = {"--budget": "400MFLOPs", "--trials": "6", "--seed": "0", "--sampler": "tpe", "--method": "two-step",
        "--accuracy": "scaling-law"}


def scale(tmp_path, **changes):
    options = {**BASE, **{f"--{k.replace('_', '-')}": v for k, v in changes.items()}}
    args = [a for pair in options.items() for a in pair]
    return invoke("scale", *args, "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "s",
                  "--report-dir", tmp_path / "r", "--no-charts", "--format", "json", "--extrapolation", "allow")


@pytest.fixture
def stored(tmp_path):
    res = scale(tmp_path)
    assert res.exit_code == 0, res.output
    return tmp_path


def _trials(tmp_path) -> int:
    return len(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}").trials)


@pytest.mark.parametrize("option, value, setting, there, now", [
    ("seed", "1", "seed (--seed):", "0", "1"),
    ("sampler", "random", "sampler (--sampler):", "tpe", "random"),
    ("method", "direct", "method (--method):", "two-step", "direct"),
    ("accuracy", "published", "accuracy (--accuracy):", "scaling-law", "published"),
    ("budget", "500MFLOPs", "budgets (--budget):", "macs<=4e+08", "macs<=5e+08"),
])
def test_a_setting_that_changes_results_is_refused(stored, option, value, setting, there, now):
    before = sorted(p.name for p in (stored / "r").iterdir())
    res = scale(stored, **{option: value, "trials": "12"})
    assert_refused(res, "study 's' already exists", f"{setting} {there} there, {now} now",
                   "give a new --study name", "run with the stored settings to continue it")
    assert _trials(stored) == 6  # nothing was run
    assert sorted(p.name for p in (stored / "r").iterdir()) == before  # nothing was written


def test_trials_below_those_done_are_said(stored):
    res = scale(stored, trials="3")
    assert res.exit_code == 0, res.output
    assert "already holds 6 trials, more than --trials 3" in res.stderr
    report = json.loads(res.stdout)
    assert (report["trials_total"], report["trials_new"]) == (6, 0)


def test_the_report_shows_the_stored_settings(tmp_path):
    first = scale(tmp_path, seed="7", sampler="random")
    assert first.exit_code == 0, first.output
    again = scale(tmp_path, seed="7", sampler="random", trials="9")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}").user_attrs["settings"]
    assert (stored["seed"], stored["sampler"]) == (7, "random")
    assert (report["seed"], report["sampler"], report["trials_total"], report["trials_new"]) == (7, "random", 9, 3)
