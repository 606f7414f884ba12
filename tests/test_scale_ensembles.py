"""`scalelab scale --ensembles/--crops`: search candidates that are ensembles and/or multi-crop tests of
a scaled network. Each variant's figures are checked against an independent analysis of its scaled
network (MACs x K x N, params x K, latency and memory by the ensemble rules), budgets against the
limits, top-1 against the ensemble-gain law applied by hand; the default options search exactly as
before; bad counts exit 2 with nothing written."""

from __future__ import annotations

import json

import optuna
import pytest

from cli_helpers import assert_refused, invoke
from scalelab.analysis.costs import analyze
from scalelab.analysis.latency import predict_latency
from scalelab.analysis.memory import inference_memory
from scalelab.graph import resolve
from scalelab.scaling.accuracy.ensemble_gain import estimate_top1
from scalelab.scaling.compound import scale_spec
from scalelab.spec import load_spec, parse_spec

PNG = b"\x89PNG\r\n\x1a\n"


def scaled_network(t: dict):
    """The network a trial priced, rebuilt from its recorded multipliers and input size."""
    base = load_spec("efficientnet_b0")
    return scale_spec(base, t["depth_multiplier"], t["width"], (t["pixels"], t["pixels"]))


def every_candidate(report: dict) -> list[dict]:
    return report["trials"] + report["refined"] + (report["two_step"]["phi_trials"] if report["two_step"] else [])


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    """A direct search of EfficientNet-B0 under 1.2 GFLOPs with ensembles of 1 or 3 on 1 or 10 crops."""
    folder = tmp_path_factory.mktemp("ens")
    storage = f"sqlite:///{folder / 's.db'}"
    res = invoke("scale", "efficientnet_b0", "--budget", "1.2GFLOPs", "--method", "direct", "--trials", 16,
                 "--ensembles", "1,3", "--crops", "1,10", "--extrapolation", "allow", "--storage", storage,
                 "--study", "ens", "--report-dir", folder / "r", "--format", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), folder / "r", storage


def test_variants_cost_k_times_n_times_their_network(direct):
    report, _, _ = direct
    variants = [t for t in every_candidate(report) if t.get("models", 1) * t.get("crops", 1) > 1]
    kinds = {(t["models"], t["crops"]) for t in variants}
    assert len(kinds) >= 2 and len(variants) >= 4, kinds
    for t in variants:
        k, n = t["models"], t["crops"]
        total = analyze(scaled_network(t)).total
        assert t["macs"] == k * n * total.macs and t["params"] == k * total.params
        assert (t["network"]["macs"], t["network"]["params"]) == (total.macs, total.params)
        if t["feasible"]:
            assert t["macs"] <= 1_200_000_000


def test_variant_top1_is_the_gain_law_on_the_network_estimate(direct):
    report, _, _ = direct
    for t in (t for t in every_candidate(report) if t.get("models", 1) * t.get("crops", 1) > 1):
        net = t["network"]
        gained = estimate_top1(net["accuracy"], t["models"], t["crops"])
        assert t["accuracy"] == pytest.approx(gained.top1)
        # the interval compounds both: the law's 80% interval at the ends of the network's
        assert t["low"] == pytest.approx(estimate_top1(net["low"], t["models"], t["crops"]).low)
        assert t["high"] == pytest.approx(estimate_top1(net["high"], t["models"], t["crops"]).high)
        assert t["low"] < gained.low and t["high"] > gained.high and t["low"] < t["accuracy"] < t["high"]
        assert "ensemble-gain law" in t["accuracy_detail"] and "scaling-law estimate" in t["accuracy_detail"]
        assert t["accuracy_method"] == "scaling-law + ensemble-gain"


def test_single_networks_keep_their_record(direct):
    report, _, _ = direct
    singles = [t for t in every_candidate(report) if "models" not in t]
    assert singles and all("crops" not in t and "network" not in t for t in singles)
    for t in singles:
        total = analyze(scaled_network(t)).total
        assert (t["macs"], t["params"]) == (total.macs, total.params)


def test_models_and_crops_are_trial_parameters_in_the_storage(direct):
    report, _, storage = direct
    study = optuna.load_study(study_name="ens", storage=storage)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 16
    assert {(t.params["models"], t.params["crops"]) for t in done} <= {(1, 1), (1, 10), (3, 1), (3, 10)}
    for t in done:
        attrs = t.user_attrs["candidate"]
        assert (attrs.get("models", 1), attrs.get("crops", 1)) == (t.params["models"], t.params["crops"])


def test_report_states_the_rules_and_the_best_of_each_variant(direct):
    report, out, _ = direct
    e = report["ensembles"]
    assert (e["models"], e["crops"]) == ([1, 3], [1, 10])
    assert "K x N" in e["budgets"]["macs"] and "ensemble-gain law" in e["accuracy"]
    assert [(r["models"], r["crops"]) for r in e["best"]] == [(1, 1), (1, 10), (3, 1), (3, 10)]
    pool = {(t["macs"], t["params"]) for t in every_candidate(report) if t["feasible"]}
    for r in e["best"]:
        if r["trial"] is not None:  # the best feasible candidate of that kind
            assert (r["macs"], r["params"]) in pool and r["macs"] <= 1_200_000_000
            same = [t for t in every_candidate(report) if t["feasible"]
                    and (t.get("models", 1), t.get("crops", 1)) == (r["models"], r["crops"])]
            assert r["value"] == max(t["value"] for t in same)
    md = (out / "ens.md").read_text()
    assert "Best within the budgets, per ensemble and crop count" in md and "| ensemble |" in md


def test_the_winner_spec_is_its_member_network(direct):
    report, out, _ = direct
    w = report["winner"]
    spec = parse_spec((out / "ens.yaml").read_text(), "ens.yaml")
    total = analyze(spec).total
    assert w["macs"] == w.get("models", 1) * w.get("crops", 1) * total.macs
    assert w["macs"] <= 1_200_000_000


def test_the_ensembles_chart_is_drawn_and_plot_reads_the_report(direct, tmp_path):
    report, out, _ = direct
    chart = out / "ens-ensembles-vs-macs.png"
    assert chart.read_bytes()[:8] == PNG and chart.stat().st_size > 20_000
    assert report["charts"]["one bigger network or an ensemble"] == chart.name
    res = invoke("plot", out / "ens.json", "--output-dir", tmp_path)
    assert res.exit_code == 0, res.output
    for name in ("ens-accuracy-vs-macs.png", "ens-scaling-curves.png", "ens-ensembles-vs-macs.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    svg = tmp_path / "e.svg"
    res = invoke("plot", out / "ens.json", "--chart", "ensembles", "-o", svg)
    assert res.exit_code == 0, res.output
    assert svg.read_text().count("<svg") == 1 and svg.stat().st_size > 20_000


def test_two_step_prices_latency_and_memory_by_the_ensemble_rules(tmp_path):
    """Step 2 runs per (K, N); latency is K x the network's at batch N, memory K x weights + one peak."""
    res = invoke("scale", "efficientnet_b0", "--budget", "3GFLOPs", "--budget", "80MB", "--device", "t4",
                 "--trials", 6, "--ensembles", "1,2", "--crops", "1,3", "--storage", "memory",
                 "--report-dir", tmp_path, "--no-charts", "--format", "json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    phi = report["two_step"]["phi_trials"]
    assert {(t.get("models", 1), t.get("crops", 1)) for t in phi} == {(1, 1), (1, 3), (2, 1), (2, 3)}
    checked = 0
    for t in phi:
        k, n = t.get("models", 1), t.get("crops", 1)
        net = resolve(scaled_network(t))
        memory = inference_memory(net, "fp32", n)
        assert t["latency_ms"] == pytest.approx(k * predict_latency(net, "t4", "fp32", n).total_ms)
        assert t["memory_bytes"] == k * memory.weight_bytes + memory.peak_bytes
        assert t["macs"] == k * n * analyze(net).total.macs
        if t["feasible"]:
            assert t["macs"] <= 3e9 and t["memory_bytes"] <= 80e6
            checked += 1
    assert checked >= 4
    assert "step 2" in report["ensembles"]["method"]


def test_default_counts_search_exactly_as_without_them(tmp_path):
    def run(*extra):
        res = invoke("scale", "--budget", "400MFLOPs", "--method", "direct", "--trials", 12, "--storage", "memory", "--extrapolation", "allow",
                     "--report-dir", tmp_path, "--no-charts", "--format", "json", *extra)
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout)
        report["refinement"].pop("seconds")
        return report

    plain, explicit = run(), run("--ensembles", "1", "--crops", "1")
    assert plain == explicit and "ensembles" not in plain
    assert all("models" not in t and "models" not in t["sampled"] for t in plain["trials"])
    # a report without ensembles has no ensembles chart to draw: refused, nothing written
    out = tmp_path / "chart.png"
    assert_refused(invoke("plot", tmp_path / f"{plain['study']}.json", "--chart", "ensembles", "-o", out),
                   "searched no ensembles or crops")
    assert not out.exists()


def test_a_study_is_not_continued_with_other_counts(direct, tmp_path):
    _, _, storage = direct
    res = invoke("scale", "efficientnet_b0", "--budget", "1.2GFLOPs", "--method", "direct", "--trials", 17,
                 "--ensembles", "1,2", "--crops", "1,10", "--extrapolation", "allow", "--storage", storage,
                 "--study", "ens", "--report-dir", tmp_path / "r")
    assert_refused(res, "--ensembles/--crops")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, fragment", [
    (("--ensembles", "0"), "must be between 1 and 100, got '0'"),
    (("--ensembles", "101"), "must be between 1 and 100"),
    (("--crops", "a"), "'a' is not a whole number"),
    (("--crops", "1,,2"), "expected whole numbers separated by commas"),
    (("--crops", "1,2.5"), "'2.5' is not a whole number in '1,2.5'"),
    (("--crops", "10001"), "must be between 1 and 10,000"),
    (("--ensembles", "1,2,3,4,5,6,7,8,9"), "at most 8 values"),
    (("--ensembles", "1,3", "--accuracy", "proxy"), "a proxy score is a ranking"),
    (("--crops", "1,10", "--budget", "1MFLOPs"), "impossible"),
])
def test_bad_counts_exit_2_and_write_nothing(tmp_path, args, fragment):
    args = args if "--budget" in args else (*args, "--budget", "400MFLOPs")
    res = invoke("scale", *args, "--trials", 3, "--report-dir", tmp_path / "r", "-o", tmp_path / "w.yaml")
    assert_refused(res, fragment)
    assert "--ensembles" in res.output or "--crops" in res.output or "impossible" in res.output
    assert list(tmp_path.iterdir()) == []


def test_ensemble_chart_data_is_each_variants_front_within_the_budget(direct):
    from scalelab.report.charts import ensemble_chart

    report, _, _ = direct
    chart = ensemble_chart(report)
    within = [t for t in every_candidate(report) if t["macs"] <= 1_200_000_000]
    assert chart.budget == (1_200_000_000, "budget 1.2GFLOPs")
    for group in chart.groups:
        drawn = sorted((v.macs, v.top1) for v in chart.variants if v.network == group)
        mine = [t for t in within if t.get("models", 1) * 10 + t.get("crops", 1) ==
                {"single": 11, "10-crop": 20, "x3": 31, "x3 10-crop": 40}[group]]
        # the most accurate of the group is drawn, and no drawn point is beaten by a cheaper one
        assert max(top1 for _, top1 in drawn) == max(t["accuracy"] for t in mine)
        assert all(b[1] > a[1] for a, b in zip(drawn, drawn[1:]))
    missing = {"single", "10-crop", "x3", "x3 10-crop"} - set(chart.groups)
    assert all(g in chart.notes[-1] for g in missing)
