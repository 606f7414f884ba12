"""Every predicted latency carries its profile's held-out error for its regime (issue 20, item 5)."""

import json

import pytest
from typer.testing import CliRunner

from scalelab.cli import app
from scalelab.devices import load_profile
from scalelab.report.search import _latency_margin


def test_analyze_states_the_error_in_text_and_json():
    t4 = load_profile("t4")
    for batch, regime in ((1, "host_bound"), (256, "device_bound")):
        result = CliRunner().invoke(app, ["analyze", "resnet18", "--device", "t4", "--batch", str(batch), "-f", "json"])
        assert result.exit_code == 0, result.output
        p = json.loads(result.output)["predicted_latency"]
        error = t4.errors[regime].stated
        assert p["regime"] == regime and p["error"] == error
        assert p["band_ms"] == pytest.approx([p["total_ms"] * (1 - error), p["total_ms"] * (1 + error)])
        assert t4.errors[regime].basis in p["error_basis"]
    text = CliRunner().invoke(app, ["analyze", "resnet18", "--device", "t4"]).output
    assert f"±{t4.errors['host_bound'].stated:.0%} (held-out median error" in text


def test_compare_says_the_error_of_its_figures():
    from scalelab.analysis.figures import network_figures
    from scalelab.graph import resolve
    from scalelab.spec.load import load_spec

    f = network_figures(resolve(load_spec("resnet18")), device="h100", batch=8)
    assert f.latency_error == 0.5 and "each figure ±50% (no published eager data" in f.latency_method


def _report(ms, limit=10.0, error=0.1):
    return {"budgets": [{"metric": "latency", "limit": limit}], "latency_error": error, "winner": {"latency_ms": ms}}


def test_a_latency_budget_says_how_close_the_winner_is_against_the_error():
    # 9 ms under 10: 10% below the limit = 1.00 x the 10% error; 9 x 1.1 = 9.9 <= 10, so even at the error's edge
    (line,) = _latency_margin(_report(9.0))
    assert "is 10.0% below the 10 ms limit, 1.00 times the prediction's ±10% (beyond the error" in line
    # 9.5 ms: 5% below = 0.50 x the error; 9.5 x 1.1 = 10.45 > 10: it may exceed the limit on the device
    (line,) = _latency_margin(_report(9.5))
    assert "5.0% below" in line and "0.50 times" in line and "within the error: on the device it may exceed" in line
    assert _latency_margin({**_report(9.0), "budgets": [{"metric": "macs", "limit": 1e9}]}) == []
