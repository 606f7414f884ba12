"""Chart data from a hand-made search report, checked without drawing; one drawing smoke test."""

from __future__ import annotations

import pytest

from scalelab.errors import ScalelabError
from scalelab.report.charts import accuracy_vs_cost, reference_points, scaling_curves, within_budgets


def trial(number, macs, params, acc, feasible=True, latency=None):
    return {"number": number, "depth": 1.0, "width": 1.0, "resolution": 1.0, "pixels": 224, "macs": macs,
            "params": params, "latency_ms": latency, "memory_bytes": None, "accuracy": acc, "feasible": feasible,
            "accuracy_method": "scaling-law", "accuracy_detail": "", "extrapolated": False, "value": acc, "sampled": {}}


def report(**over):
    trials = [trial(0, 100e6, 2e6, 70.0), trial(1, 300e6, 4e6, 76.0), trial(2, 350e6, 5e6, 75.0),
              trial(3, 500e6, 7e6, 79.0, feasible=False)]
    base = {
        "base": {"name": "efficientnet_b0", "resolution": 224}, "method": "direct", "device": None,
        "accuracy_method": "scaling-law", "accuracy_how": "estimated by the scaling-law estimator",
        "budgets": [{"metric": "macs", "limit": 400e6, "text": "400MFLOPs"}],
        "trials": trials, "pareto": [trials[0], trials[1]], "winner": trials[1], "two_step": None,
        "curve": {"coefficients": [1.2, 1.1, 1.15], "source": "EfficientNet",
                  "points": [{"phi": 1.0, "macs": 700e6, "params": 8e6, "accuracy": 79.0},
                             {"phi": 0.0, "macs": 386e6, "params": 5e6, "accuracy": 77.0}]},
    }
    base.update(over)
    return base


def test_accuracy_vs_macs_data():
    chart = accuracy_vs_cost(report(), "macs")
    assert chart.feasible == [(100e6, 70.0), (300e6, 76.0), (350e6, 75.0)]
    assert chart.infeasible == [(500e6, 79.0)]
    assert chart.pareto == [(100e6, 70.0), (300e6, 76.0)]
    assert (chart.chosen.x, chart.chosen.y) == (300e6, 76.0)
    assert chart.budget == 400e6
    assert "log scale" in chart.x_label
    assert any("scaling-law" in n for n in chart.notes)


def test_params_axis_has_no_macs_budget_line():
    chart = accuracy_vs_cost(report(), "params")
    assert chart.budget is None
    assert chart.pareto == [(2e6, 70.0), (4e6, 76.0)]


def test_references_are_the_published_networks():
    refs = {(p.label, p.x): p.y for p in reference_points("macs")}
    # torchvision efficientnet_b0: 385,814,752 MACs, acc@1 77.692 (reference README, section 1)
    assert refs[("efficientnet_b0", 385_814_752)] == 77.692
    # the paper's row: 0.39B FLOPs, 77.1 (Tan & Le 2019, Table 2)
    assert refs[("efficientnet_b0", 390_000_000)] == 77.1
    assert reference_points("latency") == []


def test_latency_axis_needs_a_device_and_unknown_axis_is_refused():
    with pytest.raises(ScalelabError, match="--device"):
        accuracy_vs_cost(report(), "latency")
    with pytest.raises(ScalelabError, match="x axis must be one of"):
        accuracy_vs_cost(report(), "joules")
    chart = accuracy_vs_cost(report(device="t4", trials=[trial(0, 1, 1, 70.0, latency=1.5)],
                                    pareto=[trial(0, 1, 1, 70.0, latency=1.5)], winner=trial(0, 1, 1, 70.0, latency=1.5)), "latency")
    assert chart.feasible == [(1.5, 70.0)] and chart.references == []


def test_two_step_trials_are_classified_by_the_budget_not_the_coefficient_constraint():
    phi_trials = [trial(0, 390e6, 5e6, 77.5), trial(1, 800e6, 9e6, 79.5)]
    r = report(two_step={"phi": 0.0, "phi_trials": phi_trials}, trials=[trial(0, 780e6, 9e6, 79.4, feasible=True)],
               pareto=[], winner=phi_trials[0])
    chart = accuracy_vs_cost(r, "macs")
    assert chart.feasible == [(390e6, 77.5)]
    assert sorted(chart.infeasible) == [(780e6, 79.4), (800e6, 79.5)]
    assert not within_budgets(trial(0, 400_000_001, 1, 1.0), r["budgets"])
    assert within_budgets(trial(0, 400_000_000, 1, 1.0), r["budgets"])


def test_scaling_curve_data_sorted_by_phi():
    chart = scaling_curves(report(two_step={"phi": 0.4, "phi_trials": []}))
    assert chart.phi == [0.0, 1.0]
    assert chart.accuracy == [77.0, 79.0] and chart.macs == [386e6, 700e6]
    assert chart.chosen_phi == 0.4
    none = report()
    none["curve"]["points"][0]["accuracy"] = None
    assert scaling_curves(none).accuracy is None
    with pytest.raises(ScalelabError, match="no scaling curve"):
        scaling_curves(report(curve=None))


def test_drawing_writes_png_files(tmp_path):
    from scalelab.report.plotting import draw_accuracy_vs_cost, draw_scaling_curves

    a = draw_accuracy_vs_cost(accuracy_vs_cost(report(), "macs"), tmp_path / "a.png")
    s = draw_scaling_curves(scaling_curves(report()), tmp_path / "s.png")
    for path in (a, s):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "s.png"]  # no temporary files left
