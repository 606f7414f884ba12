"""Chart data from a hand-made search report, checked without drawing; one drawing smoke test."""

from __future__ import annotations

import pytest

from cli_helpers import assert_refused, invoke
from scalelab.analysis import analyze
from scalelab.errors import ScalelabError
from scalelab.report.charts import (
    accuracy_vs_cost, block_breakdown, parse_breakdown_metrics, reference_points, scaling_curves, within_budgets,
)


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
    assert refs[("efficientnet_b0 (torchvision)", 385_814_752)] == 77.692
    # the paper's row: 0.39B FLOPs, 77.1 (Tan & Le 2019, Table 2); the two are told apart
    assert refs[("efficientnet_b0 (paper)", 390_000_000)] == 77.1
    # a network published once keeps its bare name
    assert any(label == "resnet50" for label, _ in refs)
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


# --------------------------------------------------------------------------------------------------
# Per-block breakdown: data checked against hand-computed figures, then through the CLI

# ResNet-50 at 224 (torchvision layout): hand-derived per-block figures.
# layer1.0: input 64x56x56 (3136 positions); 1x1 64->64, 3x3 64->64, 1x1 64->256, projection 1x1 64->256
LAYER1_0_MACS = 3136 * (64 * 64 + 64 * 64 * 9 + 64 * 256 + 64 * 256)  # 231,211,008
LAYER1_0_PARAMS = 64 * 64 + 64 * 64 * 9 + 64 * 256 + 64 * 256 + 2 * (64 + 64 + 256 + 256)  # convs + BN scale/shift
# layer1.1 and layer1.2: 1x1 256->64, 3x3 64->64, 1x1 64->256, identity shortcut
LAYER1_REPEAT_MACS = 3136 * (256 * 64 + 64 * 64 * 9 + 64 * 256)  # 218,365,952
FC_PARAMS, FC_MACS = 2048 * 1000 + 1000, 2048 * 1000


@pytest.fixture(scope="module")
def resnet50():
    return analyze("resnet50")


def panel(chart, metric):
    return next(p for p in chart.panels if p.metric == metric)


def test_breakdown_per_block_of_resnet50(resnet50):
    chart = block_breakdown(resnet50, ["macs", "params", "activations"])
    assert chart.rows[:4] == ["stem", "pool", "layer1.0", "layer1.1"] and chart.rows[-1] == "fc"
    assert chart.kinds[2] == "bottleneck"
    macs, params, acts = panel(chart, "macs"), panel(chart, "params"), panel(chart, "activations")
    i = chart.rows.index("layer1.0")
    assert macs.values[i] == LAYER1_0_MACS == 231_211_008
    assert params.values[i] == LAYER1_0_PARAMS == 75_008
    assert macs.values[chart.rows.index("layer1.1")] == LAYER1_REPEAT_MACS
    assert (params.values[-1], macs.values[-1]) == (FC_PARAMS, FC_MACS)
    # stem output 64x112x112 at fp32; the torchvision totals (reference README)
    assert acts.values[0] == 64 * 112 * 112 * 4
    assert (macs.total, params.total) == (4_089_184_256, 25_557_032)
    assert macs.shares[i] == pytest.approx(100 * 231_211_008 / 4_089_184_256)
    assert sum(macs.shares) == pytest.approx(100.0)
    assert any("Convention: MACs = multiply-accumulates" in n for n in chart.notes)


def test_breakdown_per_stage_folds_repeats(resnet50):
    chart = block_breakdown(resnet50, ["macs"], depth=1)
    assert chart.rows == ["stem", "pool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert chart.kinds[2:6] == ["bottleneck x3", "bottleneck x4", "bottleneck x6", "bottleneck x3"]
    assert panel(chart, "macs").values[2] == LAYER1_0_MACS + 2 * LAYER1_REPEAT_MACS == 667_942_912
    assert chart.title == "resnet50: cost per stage"


def test_breakdown_scales_with_batch_and_dtype():
    chart = block_breakdown(analyze("resnet50", resolution=64, batch=2), ["activations", "params"], dtype="fp16")
    # stem: 7x7/2 conv at 64 -> 64x32x32, two samples, two bytes each; parameters do not scale
    assert panel(chart, "activations").values[0] == 2 * 64 * 32 * 32 * 2
    assert panel(chart, "params").values[0] == 64 * 3 * 49 + 2 * 64
    assert "x 2 (fp16)" in chart.notes[0]


def test_breakdown_latency_follows_the_roofline_formula(resnet50):
    from scalelab.analysis.latency import predict_latency

    from scalelab.devices import load_profile

    t4 = load_profile("t4").model_copy(update={"host_us": 0.0})  # the device's roofline alone, no eager host
    prediction = predict_latency(resnet50.network, t4, "fp32", 1)
    chart = block_breakdown(resnet50, ["latency"], latency=prediction)
    # fc on the t4 profile (8.1 TFLOP/s fp32 at its achievable fraction x linear efficiency; 320 GB/s at its
    # achievable fraction; 6 us a kernel): flops 2 x MACs + 1000 bias adds; bytes = 4 x (weights + 2048 inputs
    # + 1000 outputs); flatten is free
    compute_ms = 1e3 * (2 * FC_MACS + 1000) / (8.1e12 * t4.achievable_compute * t4.efficiency["linear"])
    memory_ms = 1e3 * 4 * (FC_PARAMS + 2048 + 1000) / (320e9 * t4.achievable_bandwidth)
    assert panel(chart, "latency").values[-1] == pytest.approx(max(compute_ms, memory_ms) + 0.006, rel=1e-12)
    assert panel(chart, "latency").total == pytest.approx(prediction.total_ms)
    assert "on t4" in panel(chart, "latency").title
    assert any("roofline on profile t4" in n for n in chart.notes)
    with pytest.raises(ScalelabError, match="latency prediction"):
        block_breakdown(resnet50, ["latency"])
    with pytest.raises(ScalelabError, match="batch 4"):
        block_breakdown(resnet50, ["macs"], latency=predict_latency(resnet50.network, "t4", "fp32", 4))


def test_breakdown_leaves_training_only_heads_out():
    analysis = analyze("googlenet", resolution=64)
    chart = block_breakdown(analysis, ["params"])
    assert "aux1" not in chart.rows and "aux2" not in chart.rows
    assert panel(chart, "params").total == analysis.total.params  # the inference total
    assert any("aux1, aux2" in n for n in chart.notes)


def test_breakdown_metric_parsing():
    assert parse_breakdown_metrics("macs, params", with_latency=False) == ["macs", "params"]
    assert parse_breakdown_metrics("all", with_latency=False) == ["macs", "params", "activations"]
    assert parse_breakdown_metrics("all", with_latency=True)[-1] == "latency"
    with pytest.raises(ScalelabError, match="did you mean 'params'"):
        parse_breakdown_metrics("macs,parms", with_latency=False)
    with pytest.raises(ScalelabError, match="needs --device"):
        parse_breakdown_metrics("latency", with_latency=False)


def test_cli_breakdown_writes_a_chart(tmp_path):
    out = tmp_path / "r.png"
    res = invoke("plot", "resnet50", "--breakdown", "macs,params", "--depth", "1", "--resolution", "64", "-o", out)
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = invoke("plot", "mobilenet_v2", "--breakdown", "all", "--device", "t4", "--dtype", "fp16",
                 "--output-dir", tmp_path)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mobilenet_v2-breakdown.png", "r.png"]


def test_cli_breakdown_refuses_bad_input_without_writing(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("name: net\ninput: {channels: 3, resolution: 32}\nblocks:\n"
                    "  - {name: a, kind: conv, out: 8, kernel: 3}\n  - {name: b, kind: botleneck, out: 8}\n")
    out = tmp_path / "net.png"
    assert_refused(invoke("plot", spec, "--breakdown", "macs", "-o", out), "net.yaml:5:", "blocks[1]", "botleneck")
    assert_refused(invoke("plot", "resnet50", "--breakdown", "macs,flops", "-o", out), "unknown metric 'flops'")
    assert_refused(invoke("plot", "resnet50", "--breakdown", "latency", "-o", out), "needs --device")
    assert_refused(invoke("plot", "resnet50", "--breakdown", "macs", "--device", "t5", "-o", out), "t5")
    assert_refused(invoke("plot", "resnet50", "--breakdown", "macs", "-o", tmp_path / "net.txt"), "png, svg, pdf")
    assert_refused(invoke("plot", "resnet50", "--breakdown", "macs", "-o", tmp_path / "no" / "net.png"), "does not exist")
    assert_refused(invoke("plot", "resnet50", "--breakdown", "macs", "--x", "params", "-o", out), "--x")
    assert_refused(invoke("plot", "resnet50", "--device", "t4"), "--device", "--breakdown")
    assert_refused(invoke("plot", spec), "not JSON", "--breakdown")
    assert list(tmp_path.iterdir()) == [spec]  # no chart, no temporary file


def test_breakdown_data_path_imports_neither_torch_nor_matplotlib(run_fresh):
    _, heavy = run_fresh("from scalelab.analysis import analyze\nfrom scalelab.analysis.latency import predict_latency\n"
                         "from scalelab.report.charts import block_breakdown\na = analyze('resnet50')\n"
                         "block_breakdown(a, ['macs', 'latency'], latency=predict_latency(a.network, 't4'))\n")
    assert heavy == []


def test_a_proxy_score_gets_its_own_axis_without_published_top1():
    chart = accuracy_vs_cost(report(accuracy_method="proxy", accuracy_how="zero-cost proxy score"), "macs")
    assert chart.references == [] and "rank only" in chart.y_label and "top-1" not in chart.y_label
    assert "proxy score" in chart.title


def test_legend_names_the_pareto_metric_of_its_axis_and_the_budget_value():
    macs = accuracy_vs_cost(report(), "macs")
    params = accuracy_vs_cost(report(), "params")
    assert "vs MACs" in macs.pareto_label and "vs parameters" in params.pareto_label
    assert macs.budget_label == "budget 400MFLOPs" and params.budget is None
    # the front of each axis: trials 0 and 1 on both (trial 2 is dearer and less accurate)
    assert macs.pareto == [(100e6, 70.0), (300e6, 76.0)] and params.pareto == [(2e6, 70.0), (4e6, 76.0)]


def test_latency_axis_names_its_device():
    trials = [trial(0, 1e8, 2e6, 70.0, latency=1.2), trial(1, 3e8, 4e6, 76.0, latency=2.5)]
    chart = accuracy_vs_cost(report(device="t4", trials=trials, pareto=trials, winner=trials[1]), "latency")
    assert "t4" in chart.x_label and chart.x_unit == "ms"


def test_a_direct_search_curve_marks_its_own_result():
    curve = {"coefficients": [0.9, 1.05, 0.85], "source": "the ray through this direct search's winner",
             "chosen_phi": 1.0, "points": [{"phi": 0.0, "macs": 386e6, "params": 5e6, "accuracy": 77.0},
                                           {"phi": 1.0, "macs": 390e6, "params": 5.5e6, "accuracy": 77.4}]}
    chart = scaling_curves(report(curve=curve))
    assert chart.chosen_phi == 1.0 and chart.coefficients == (0.9, 1.05, 0.85)


@pytest.mark.parametrize("asked, built", [(1.1, 1.1015625), (0.5, 0.5)])
def test_the_chosen_network_shows_the_width_asked_and_built_as_the_table_does(asked, built):
    """ResNet-50 at x1.1 builds its widest map at 2256 of 2048 channels (x1.1015625): the label says
    both, to the table's three places, so that the two differ where the build rounded."""
    from scalelab.report.search import candidate_columns

    w = dict(trial(1, 300e6, 4e6, 76.0), width=asked, width_built=built)
    r = report(winner=w, trials=[w], pareto=[w], objective="accuracy")
    label = accuracy_vs_cost(r).chosen.label
    cell = dict(candidate_columns(r))["width asked→built"](w)
    assert f"width x{asked:.3f} asked → x{built:.3f} built" in label
    assert cell == f"{asked:.3f}→{built:.3f}"


def test_a_report_without_the_width_built_labels_the_width_asked():
    w = trial(1, 300e6, 4e6, 76.0)  # a report stored before the built width was recorded
    label = accuracy_vs_cost(report(winner=w)).chosen.label
    assert "width x1.000 asked," in label and "built," in label and "→" not in label


def test_the_chosen_label_reads_on_the_drawn_chart(tmp_path):
    from scalelab.report.plotting import draw_accuracy_vs_cost

    w = dict(trial(1, 300e6, 4e6, 76.0), width=1.1, width_built=1.1015625, depth=1.2, pixels=240)
    chart = accuracy_vs_cost(report(winner=w))
    path = draw_accuracy_vs_cost(chart, tmp_path / "chosen.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart.chosen.label == "chosen: depth x1.20 built, width x1.100 asked → x1.102 built, 240px"
