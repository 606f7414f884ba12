"""`analyze --device P --measure` reports the predictor's own error against the measurement."""

import json
from statistics import median

import pytest

from typer.testing import CliRunner

from scalelab.cli import app

SPEC = """name: tiny
input: {channels: 3, resolution: 16}
blocks:
  - {name: a, kind: conv, out: 8}
  - {name: b, kind: conv, out: 8, stride: 2}
  - {name: pool, kind: global_avgpool}
  - {name: fc, kind: linear, out: 4}
"""


def test_prediction_error_is_worked_out_from_the_reported_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    result = CliRunner().invoke(app, ["analyze", str(spec), "--device", "x86_cpu", "--measure", "--allow-noisy",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    predicted = report["predicted_latency"]["total_ms"]
    measured = report["measured_latency"]["network_median_ms"]
    assert report["prediction_error"]["network"] == abs(predicted - measured) / measured
    rows = {r["name"]: r for r in report["rows"]}
    errors = [abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows.values()]
    # per-row figures in the JSON are rounded to the microsecond, hence the tolerance
    assert report["prediction_error"]["per_block_median"] == pytest.approx(median(errors), rel=1e-3)
