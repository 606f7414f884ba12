"""`scalelab scale` and `scalelab plot` through the CLI: the search writes a spec that reads back to
the network it reports, applied scalings reproduce torchvision's EfficientNet-B1, and bad input
(budgets, impossible budgets, storage URLs, option clashes) exits 2 with one message, no traceback
and no output file."""

from __future__ import annotations

import json
import math

import pytest

from typer.testing import CliRunner

from cli_helpers import assert_refused, invoke
from scalelab.cli import app
from scalelab.analysis.costs import analyze
from scalelab.spec import parse_spec



@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """One default-base search (EfficientNet-B0, 400 MFLOPs) shared by the tests that read it."""
    folder = tmp_path_factory.mktemp("scale")
    out = folder / "reports"
    res = invoke("scale", "--budget", "400MFLOPs", "--trials", 40, "--report-dir", out,
                 "--storage", f"sqlite:///{folder / 's.db'}", "--study", "b0", "--format", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), out


def test_search_report_and_winner(search):
    report, out = search
    w = report["winner"]
    assert 360_000_000 <= w["macs"] <= 400_000_000
    assert report["flops_convention"]["name"] == "paper"
    assert "1 FLOP = 1 multiply-add" in report["budgets"][0]["meaning"]
    assert report["accuracy_method"] == "scaling-law" and "scaling-law estimate" in w["accuracy_detail"]
    assert {p.name for p in out.iterdir()} >= {"b0.yaml", "b0.json", "b0.md", "b0-accuracy-vs-macs.png",
                                               "b0-accuracy-vs-params.png", "b0-scaling-curves.png", "s.db"} - {"s.db"}
    md = (out / "b0.md").read_text()
    assert "1 FLOP = 1 multiply-add" in md and "estimated by" in md and "Pareto front" in md


def test_written_spec_reads_back_to_the_reported_network(search):
    report, out = search
    spec = parse_spec((out / "b0.yaml").read_text(), "b0.yaml")
    total = analyze(spec).total
    assert (total.macs, total.params) == (report["winner"]["macs"], report["winner"]["params"])
    assert spec.input.resolution[0] == report["winner"]["pixels"]


def test_rerun_resumes_the_stored_study(search, tmp_path):
    report, out = search
    storage = report["storage"]
    res = invoke("scale", "--budget", "400MFLOPs", "--trials", 45, "--report-dir", tmp_path,
                 "--storage", storage, "--study", "b0", "--format", "json", "--no-charts")
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert (again["trials_total"], again["trials_new"]) == (45, 5)
    first = {t["number"]: (t["depth"], t["width"], t["resolution"]) for t in report["trials"]}
    later = {t["number"]: (t["depth"], t["width"], t["resolution"]) for t in again["trials"]}
    assert all(later[n] == v for n, v in first.items())


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "┏┃┡│└" or line.strip() in ("Best candidates", "Pareto front")]


def test_each_written_file_is_named_on_stderr_and_the_tables_fit_columns(search, tmp_path):
    # resuming the stored study with no new trial: a narrow terminal drops columns, never splits a cell
    report, _ = search
    res = CliRunner().invoke(app, ["scale", "--budget", "400MFLOPs", "--trials", "40", "--report-dir", str(tmp_path),
                                   "--storage", report["storage"], "--study", "b0"], env={"COLUMNS": "60"})
    assert res.exit_code == 0, res.output
    wrote = [line for line in res.stderr.splitlines() if not line.startswith("note: ")]  # resumed: a note first
    names = ["b0.yaml", "b0.json", "b0.md", "b0-accuracy-vs-macs.png", "b0-accuracy-vs-params.png", "b0-scaling-curves.png"]
    assert wrote == [f"wrote {tmp_path / name}" for name in names]
    assert all((tmp_path / name).stat().st_size > 0 for name in names)
    assert (tmp_path / "b0-scaling-curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = res.stdout.splitlines()
    assert lines[-1] == f"Inspect the study: optuna-dashboard {report['storage']}"  # a URL is never cut
    assert max(len(line) for line in lines[:-1]) <= 60
    table = _table_lines(res.stdout)
    assert len(table) == 2 * (2 + 4) + len(report["ranked"]) + len(report["pareto"])  # title, 3 rules, 2 header rows
    assert "top-1" in table[2] and "trial" in table[3] and "MACs" in table[3]  # the most important columns stay
    assert all(line.count("[") == line.count("]") for line in table)  # an interval stays in one cell
    assert "Left out to fit 60 columns: " in " ".join(lines)


def test_piped_output_keeps_prose_whole_and_tables_at_100_columns(search, tmp_path):
    report, _ = search
    res = CliRunner().invoke(app, ["scale", "--budget", "400MFLOPs", "--trials", "40", "--report-dir", str(tmp_path),
                                   "--storage", report["storage"], "--study", "b0", "--no-charts"], env={"COLUMNS": None})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    study = [line for line in lines if line.startswith("Study: ")]
    assert len(study) == 1 and study[0].startswith(f"Study: 'b0' in {report['storage']} (")
    assert study[0].endswith(" completed trials, 0 run now; sampler tpe, seed 0)")
    accuracy = next(line for line in lines if line.startswith("Accuracy: "))
    assert accuracy.endswith(report["winner"]["accuracy_detail"])  # one line, however long
    table = _table_lines(res.stdout)
    assert max(len(line) for line in table) <= 100 and "reward" in table[3]  # every column fits 100
    assert all(line.count("[") == line.count("]") for line in table)
    assert not any(line.startswith("Left out") for line in lines)


def test_plot_redraws_from_the_json_report(search, tmp_path):
    report, out = search
    res = invoke("plot", out / "b0.json", "--output-dir", tmp_path, "--x", "params")
    assert res.exit_code == 0, res.output
    for name in ("b0-accuracy-vs-params.png", "b0-scaling-curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_refuses_a_latency_axis_without_a_device(search, tmp_path):
    _, out = search
    assert_refused(invoke("plot", out / "b0.json", "--x", "latency", "--output-dir", tmp_path), "--device")
    assert list(tmp_path.iterdir()) == []


def test_plot_refuses_what_is_not_a_report(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_refused(invoke("plot", bad), "bad.json:1:2: not JSON")
    other = tmp_path / "other.json"
    other.write_text("{}")
    assert_refused(invoke("plot", other), "not a report of `scalelab scale`")


# -- applying a scaling directly -----------------------------------------------------------------


def test_depth_width_resolution_give_torchvision_b1(tmp_path):
    # EfficientNet-B1 = B0 with depth 1.1, width 1.0, 240 px: torchvision efficientnet_b1 has
    # 7,794,184 parameters and 686,802,832 MACs (reference README, section 1)
    out = tmp_path / "b1.yaml"
    res = invoke("scale", "efficientnet_b0", "--depth", 1.1, "--width", 1.0, "--resolution", 240, "-o", out,
                 "--format", "json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["params"], summary["macs"]) == (7_794_184, 686_802_832)
    spec = parse_spec(out.read_text(), str(out))
    assert (analyze(spec).total.params, analyze(spec).total.macs) == (7_794_184, 686_802_832)


def test_phi_applies_alpha_beta_gamma(tmp_path):
    out = tmp_path / "phi1.yaml"
    res = invoke("scale", "efficientnet_b0", "--phi", 1, "-o", out)
    assert res.exit_code == 0, res.output
    spec = parse_spec(out.read_text(), str(out))
    assert spec.input.resolution == (258, 258)  # 224 x 1.15 = 257.6
    # repeats ceil(1.2 x [1, 2, 2, 3, 3, 4, 1])
    assert [e.repeat for e in spec.blocks if hasattr(e, "repeat")] == [2, 3, 3, 4, 4, 5, 2]
    # channels: 32 x 1.1 = 35.2 -> 32 (nearest multiple of 8, above 90%); 1280 x 1.1 = 1408
    assert spec.blocks[0].out == 32 and next(b for b in spec.blocks if getattr(b, "name", "") == "head").out == 1408
    assert "estimated top-1" in res.output


def test_apply_prints_yaml_without_output(tmp_path):
    res = invoke("scale", "efficientnet_b0", "--width", 0.5)
    assert res.exit_code == 0, res.output
    assert parse_spec(res.stdout, "stdout").name.startswith("efficientnet_b0")


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("budget, fragment", [
    ("400MFLOPz", "unknown unit"),
    ("5M", "ambiguous"),
    ("lots", "expected a number"),
])
def test_bad_budget(tmp_path, budget, fragment):
    out = tmp_path / "reports"
    assert_refused(invoke("scale", "--budget", budget, "--report-dir", out), fragment, "accepted units")
    assert not out.exists()


def test_impossible_budget_writes_nothing(tmp_path):
    out = tmp_path / "reports"
    assert_refused(invoke("scale", "--budget", "1MFLOPs", "--report-dir", out, "-o", tmp_path / "w.yaml"),
                   "impossible", "smallest scaling allowed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["nosuchdb://x", "sqlite:////no/such/folder/s.db", "not a url"])
def test_bad_storage_url(tmp_path, url):
    out = tmp_path / "reports"
    assert_refused(invoke("scale", "--budget", "400MFLOPs", "--report-dir", out, "--storage", url,
                          "-o", tmp_path / "w.yaml"), f"storage '{url}'", "Optuna storage")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, fragment", [
    ((), "nothing to do"),
    (("--budget", "400MFLOPs", "--phi", "1"), "not both"),
    (("--phi", "1", "--depth", "2"), "do not combine"),
    (("--budget", "2ms"), "--device"),
    (("--budget", "400MFLOPs", "--budget", "0.3GMACs"), "both limit MACs"),
    (("--budget", "400MFLOPs", "--min-depth", "2", "--max-depth", "1"), "depth range"),
    (("--budget", "400MFLOPs", "--accuracy", "train"), "--data"),
    (("no_such_spec", "--budget", "400MFLOPs"), "no such file or zoo spec"),
])
def test_clashing_or_missing_options(tmp_path, args, fragment):
    assert_refused(invoke("scale", *args, "--report-dir", tmp_path / "r"), fragment)
    assert list(tmp_path.iterdir()) == []


def test_hardware_convention_halves_the_budget(tmp_path):
    res = invoke("scale", "--budget", "800MFLOPs", "--flops-convention", "hardware", "--trials", 25,
                 "--storage", "memory", "--report-dir", tmp_path, "--no-charts", "--format", "json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["budgets"][0]["limit"] == 400_000_000
    assert "2 FLOPs" in report["flops_convention"]["meaning"]
    assert report["winner"]["macs"] <= 400_000_000


def test_latency_budget_on_a_device(tmp_path):
    res = invoke("scale", "--budget", "8ms", "--device", "t4", "--trials", 15, "--storage", "memory",
                 "--report-dir", tmp_path, "--format", "json", "--extrapolation", "allow")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    w = report["winner"]
    assert w["latency_ms"] is not None and w["latency_ms"] <= 8.0
    from scalelab.devices import load_profile

    assert report["latency_error"] == load_profile("t4").errors["host_bound"].stated  # batch 1: host-bound
    markdown = (tmp_path / f"{report['study']}.md").read_text()
    assert "Latency margin: the winner's" in markdown and "times the prediction's" in markdown
    assert math.isfinite(w["accuracy"])
    assert (tmp_path / f"{report['study']}-accuracy-vs-latency.png").exists()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGKILL"])
def test_a_killed_search_resumes_from_its_storage(tmp_path, sig):
    """Ctrl-C (SIGINT) or a killed process, then the same command again: the study continues."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    import optuna

    storage = f"sqlite:///{tmp_path / 's.db'}"
    args = [sys.executable, "-m", "scalelab", "scale", "--budget", "400MFLOPs", "--method", "direct",
            "--extrapolation", "allow", "--storage", storage, "--study", "k", "--report-dir", str(tmp_path / "r"),
            "--no-charts", "--format", "json"]
    proc = subprocess.Popen(args + ["--trials", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.getcwd()})
    complete, deadline = 0, time.monotonic() + 60
    while complete < 4 and time.monotonic() < deadline:  # read-only polling: the run creates the schema
        time.sleep(0.2)
        try:
            with sqlite3.connect(f"file:{tmp_path / 's.db'}?mode=ro", uri=True) as db:
                complete = db.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
        except sqlite3.Error:  # not created yet
            pass
    assert proc.poll() is None, proc.communicate()[1].decode()
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=30)
    if sig == "SIGINT":
        assert proc.returncode == 130 and b"interrupted" in err and b"Traceback" not in err, err.decode()
    study = optuna.load_study(study_name="k", storage=storage)
    done = {t.number: t.params for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    total = len(done) + 3
    res = subprocess.run(args + ["--trials", str(total)], capture_output=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert (report["trials_total"], report["trials_new"]) == (total, 3)
    after = {t["number"]: t for t in report["trials"]}
    assert len(after) == total
    for number, params in done.items():  # kept as they were
        assert (after[number]["sampled"], after[number]["width"]) == (params, params["width"])


def test_resnext_scales_and_searches_through_the_cli(tmp_path):
    result = invoke("scale", "resnext50_32x4d", "--width", "1.3", "--format", "json")
    assert result.exit_code == 0, result.output
    result = invoke("scale", "resnext50_32x4d", "--budget", "6GFLOPs", "--trials", "6", "--storage", "memory",
                    "--no-charts", "--report-dir", tmp_path, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stderr names the files written
    assert report["winner"]["macs"] <= 6e9 and report["trials_failed"] == []
    low, high, top1 = report["winner"]["low"], report["winner"]["high"], report["winner"]["accuracy"]
    assert low < top1 < high and report["ties"]["count"] <= report["ties"]["of"]


def test_proxy_column_is_a_rank_only_score_and_estimates_show_their_interval():
    from scalelab.report.search import candidate_columns

    row = {"number": 3, "depth": 1.4375, "width": 1.1, "pixels": 240, "macs": 5e8, "params": 6e6,
           "accuracy": 42.1234, "extrapolated": False, "value": 42.1, "low": None, "high": None}
    base = {"device": None, "budgets": [{"metric": "macs"}], "objective": "reward"}
    proxy = dict(candidate_columns({**base, "accuracy_method": "proxy"}))
    assert "proxy score (rank only)" in proxy and not any("top-1" in h for h in proxy)
    assert proxy["proxy score (rank only)"](row) == "42.12"
    law = dict(candidate_columns({**base, "accuracy_method": "scaling-law"}))
    cell = law["top-1 (est.) [80%]"]({**row, "accuracy": 77.7, "low": 76.9, "high": 78.5})
    assert cell == "77.70 [76.9, 78.5]" and law["depth (built)"](row) == "1.438"


def test_every_scale_option_reaches_an_option_group():
    """The command hands its options on as typed groups: an option no group takes would be ignored."""
    import dataclasses
    import inspect

    from scalelab.cli import scale_options as so
    from scalelab.cli.scale import scale

    groups = (so.ApplyOptions, so.PricingOptions, so.SearchOptions, so.StudyOptions, so.ReportOptions)
    taken = {f.name for group in groups for f in dataclasses.fields(group)} | {"spec"}  # SPEC: the base, loaded first
    assert taken == set(inspect.signature(scale).parameters) - {"ctx"}  # ctx: which options were given
