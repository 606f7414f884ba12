"""Ensembles and multi-crop: exact multiples and sums of the members' figures, and the gain law
fitted on published ensemble results."""

import json
import math

import numpy as np
import pytest

from scalelab import analyze
from scalelab.analysis.memory import inference_memory, training_memory
from scalelab.graph import resolve
from scalelab.spec import load_spec
from tests.cli_helpers import assert_refused, invoke


def ensemble_json(*args) -> dict:
    result = invoke("analyze", *args, "-f", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["ensemble"]


def test_ten_crops_multiply_the_work_and_keep_the_parameters():
    one = analyze("resnet18").total
    ens = ensemble_json("resnet18", "--crops", "10")
    assert (ens["models"], ens["crops"]) == (1, 10)
    assert ens["total"]["params"] == one.params
    assert ens["total"]["macs"] == 10 * one.macs
    assert ens["total"]["other_ops"] == 10 * one.ops
    peak = inference_memory(resolve(load_spec("resnet18")), "fp32", 1).peak_bytes
    assert ens["total"]["activation_peak_bytes"] == 10 * peak
    assert ens["total"]["averaging_ops"] == 10 * 1000  # 10 output vectors of 1000 classes averaged


def test_an_ensemble_sums_its_members_and_keeps_the_largest_peak():
    names = ("resnet18", "resnet34", "resnet50")
    totals = [analyze(n).total for n in names]
    ens = ensemble_json("resnet18", "--ensemble", "resnet34,resnet50")
    assert [m["name"] for m in ens["members"]] == list(names)
    assert ens["total"]["params"] == sum(t.params for t in totals)
    assert ens["total"]["macs"] == sum(t.macs for t in totals)
    assert ens["total"]["other_ops"] == sum(t.ops for t in totals)
    nets = [resolve(load_spec(n)) for n in names]
    assert ens["total"]["activation_peak_bytes"] == max(inference_memory(n, "fp32", 1).peak_bytes for n in nets)
    assert ens["total"]["training_bytes"] == sum(training_memory(n, "fp32", 1, "sgd").total_bytes for n in nets)
    assert ens["members"][2]["macs"] == totals[2].macs


def test_copies_and_crops_and_batch_combine_and_latency_adds_up():
    one = analyze("mobilenet_v2").total
    ens = ensemble_json("mobilenet_v2", "--ensemble", "3", "--crops", "10", "--batch", "4", "--device", "t4")
    assert ens["total"]["macs"] == 3 * 10 * 4 * one.macs
    assert ens["per_image"]["macs"] == 3 * 10 * one.macs
    assert ens["total"]["params"] == 3 * one.params
    member_ms = [m["predicted_ms"] for m in ens["members"]]
    assert ens["total"]["predicted_ms"] == pytest.approx(sum(member_ms)) and len(set(member_ms)) == 1
    from scalelab.analysis.latency import predict_latency

    at_40 = predict_latency(resolve(load_spec("mobilenet_v2")), "t4", "fp32", 40).total_ms
    assert member_ms[0] == pytest.approx(at_40)  # crops run as one batch of 4 x 10
    # the training memory is at the training batch: crops are a test-time trick
    assert ens["total"]["training_bytes"] == 3 * training_memory(resolve(load_spec("mobilenet_v2")), "fp32", 4, "sgd").total_bytes


def test_report_states_both_rules_and_the_accuracy_estimate():
    out = invoke("analyze", "resnet50", "--ensemble", "3", "--crops", "10", "-f", "markdown").output
    assert "Crops multiply the work and keep the parameters" in out and "An ensemble sums its members" in out
    acc = ensemble_json("resnet50", "--ensemble", "3", "--crops", "10")["accuracy"]
    low, high = acc["interval_80"]
    assert 76.13 < low < acc["top1"] < high < 100
    assert "ensemble-gain law" in acc["method"]
    assert ensemble_json("lenet5", "--crops", "10")["accuracy"] is None  # no published top-1 to start from


def test_bad_ensembles_are_refused():
    assert_refused(invoke("analyze", "resnet18", "--ensemble", "resnet34,,resnet50"), "--ensemble")
    assert_refused(invoke("analyze", "resnet18", "--ensemble", "resnet999"), "resnet999")
    assert_refused(invoke("analyze", "resnet18", "--ensemble", "0"), "--ensemble")
    assert_refused(invoke("analyze", "resnet18", "--ensemble", "resnet20"), "--ensemble", "one shape")  # 10 vs 1000 classes
    assert invoke("analyze", "resnet18", "--crops", "0").exit_code == 2


# --------------------------------------------------------------------------------------------------
# The gain law


def test_published_rows_and_the_fit_by_least_squares():
    from scalelab.scaling.accuracy.ensemble_gain import fitted_gain, points, table

    googlenet = {(r.models, r.crops): r.error for r in table().rows if r.study == "googlenet"}
    assert googlenet == {(1, 1): 10.07, (1, 10): 9.15, (1, 144): 7.89, (7, 1): 8.09, (7, 10): 7.62, (7, 144): 6.67}
    pts = points()
    x = np.array([[-math.log(p.models), -math.log(p.crops)] for p in pts])
    y = np.array([math.log(p.ratio) for p in pts])
    (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
    law = fitted_gain()
    assert (law.a, law.b) == pytest.approx((a, b))
    assert law.ratio(1, 1) == 1.0
    assert 0 < law.ratio(7, 10) < law.ratio(7, 1) < 1  # more views, less error
    assert law.coverage >= 0.8


def test_the_estimate_keeps_one_model_one_crop_exact_and_widens_with_the_gain():
    from scalelab.scaling.accuracy.ensemble_gain import estimate_top1

    same = estimate_top1(70.0, 1, 1)
    assert same.top1 == same.low == same.high == 70.0
    small, large = estimate_top1(70.0, 2, 1), estimate_top1(70.0, 7, 10)
    assert (small.high - small.low) < (large.high - large.low)
    assert estimate_top1(70.0, 15, 1).extrapolated and not small.extrapolated
