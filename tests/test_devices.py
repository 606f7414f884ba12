"""Device profiles: the shipped ones load and validate, a malformed one gives a located error
(through the CLI too), and `scalelab calibrate` writes a profile the predictor accepts."""

import json

import pytest
from typer.testing import CliRunner

from scalelab.analysis.latency import predict_latency
from scalelab.cli import app
from scalelab.devices import load_profile, parse_profile, profile_names
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

runner = CliRunner()

GOOD = """name: ok
kind: gpu
peak_flops: {fp32: 1.0e12}
memory_bandwidth: 1.0e11
achievable_compute: 0.5
achievable_bandwidth: 0.8
launch_overhead_us: 5
sources: {peak_flops: a datasheet, memory_bandwidth: a datasheet}
"""


def test_shipped_profiles():
    assert {"h100", "a100", "l4", "t4", "rtx4090", "jetson_orin_nano", "x86_cpu"} <= set(profile_names())
    for name in profile_names():
        p = load_profile(name)
        assert p.name == name and p.sources["peak_flops"] and p.sources["memory_bandwidth"]
        assert p.flops("fp32") > 0 and 0 < p.achievable_compute <= 1
    # datasheet figures, as published
    assert load_profile("t4").peak_flops["fp16"] == 65e12 and load_profile("t4").memory_bandwidth == 320e9
    assert load_profile("a100").peak_flops["bf16"] == 312e12 and load_profile("h100").memory_bandwidth == 3.35e12


@pytest.mark.parametrize("change, where, message", [
    (("achievable_compute: 0.5", "achievable_compute: 1.5"), "bad.yaml:5:21: achievable_compute", "less than or equal to 1 (got 1.5)"),
    (("kind: gpu", "kind: tpu"), "bad.yaml:2:7: kind", "must be one of 'gpu' or 'cpu' (got 'tpu')"),
    (("peak_flops: {fp32: 1.0e12}", "peak_flops: {fp64: 1.0e12}"), "bad.yaml:3:20: peak_flops.fp64", "must be one of"),
    (("launch_overhead_us: 5", "launch_overhead: 5"), "bad.yaml:7:18: launch_overhead", "unknown field 'launch_overhead' (did you mean 'launch_overhead_us'?)"),
    (("memory_bandwidth: a datasheet", "bandwidth: a datasheet"), "bad.yaml", "sources.memory_bandwidth is missing"),
    (("memory_bandwidth: 1.0e11\n", ""), "bad.yaml:1:1", "missing required field 'memory_bandwidth'"),
    (("launch_overhead_us: 5", "launch_overhead_us: 5\noverhead_us: {norm: -1}"), "bad.yaml", "overhead_us.norm must be at least 0"),
    (("launch_overhead_us: 5", "launch_overhead_us: 5\noverhead_us: {batchnorm: 3}"), "bad.yaml:8:26: overhead_us.batchnorm",
     "must be one of"),
])
def test_malformed_profile(change, where, message):
    with pytest.raises(ScalelabError) as err:
        parse_profile(GOOD.replace(*change), "bad.yaml")
    assert str(err.value).startswith(where) and message in str(err.value)


def test_malformed_profile_through_the_cli(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("achievable_compute: 0.5", "achievable_compute: 1.5"))
    result = runner.invoke(app, ["devices", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:5:21: achievable_compute: device profile: Input should be less than or equal to 1" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["devices", "a10"])
    assert result.exit_code == 2 and "did you mean 'a100'" in result.output


def test_devices_lists_them():
    result = runner.invoke(app, ["devices", "--format", "json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == profile_names()
    assert rows[0]["units"]["memory_bandwidth"] == "bytes/s" and rows[0]["sources"]["peak_flops"]
    table = runner.invoke(app, ["devices"])
    assert table.exit_code == 0 and "jetson_orin_nano" in table.output


def test_calibrate_writes_a_usable_profile(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from scalelab.devices import calibrate as cal

    # a reduced shape set keeps the test fast; the command is the same
    monkeypatch.setattr(cal, "GRID", [(16, 8)])
    monkeypatch.setattr(cal, "TINY", [(8, 1)])
    monkeypatch.setattr(cal, "TIME_BUDGET_S", 0.02)
    monkeypatch.setattr(cal, "MATMUL_SIZE", {"cpu": 128, "cuda": 128})
    out = tmp_path / "here.yaml"
    result = runner.invoke(app, ["calibrate", "--output", str(out), "--name", "here"])
    assert result.exit_code == 0, result.output
    profile = load_profile(out)
    assert profile.name == "here" and profile.calibration["device"] == "cpu" and profile.peak_flops["fp32"] > 0
    assert "measured by `scalelab calibrate`" in profile.sources["peak_flops"]
    # a fixed cost for every kind measured on tiny inputs; elementwise is the generic launch overhead
    assert set(profile.overhead_us) == {"dense_conv", "pointwise_conv", "grouped_conv", "depthwise_conv",
                                        "strided_depthwise_conv", "linear", "pool", "norm"}
    assert profile.launch_overhead_us > 0 and all(v > 0 for v in profile.overhead_us.values())
    assert all(0 < v <= 1 for v in profile.efficiency.values())
    net = resolve(parse_spec("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {kind: conv, out: 4}"))
    prediction = predict_latency(net, str(out))
    assert prediction.total_ms > 0 and "calibrated" in prediction.method
    missing = runner.invoke(app, ["calibrate", "--output", str(tmp_path / "no" / "x.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
