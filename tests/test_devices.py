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
    table = runner.invoke(app, ["devices"], env={"COLUMNS": "200"})  # wide enough that no pair wraps
    assert table.exit_code == 0 and "jetson_orin_nano" in table.output
    t4 = [r for r in rows if r["name"] == "t4"][0]
    assert f"{t4['errors']['host_bound']['median']:.1%} / {t4['errors']['device_bound']['median']:.1%}" in table.output
    # h100, l4, jetson: no published data; a stated figure never wraps inside itself (a no-break space)
    assert "±50%\u00a0stated / ±50%\u00a0stated" in table.output


def test_calibrate_writes_a_usable_profile(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from scalelab.analysis import calibrate as cal

    # reduced floors and budgets keep the test fast; the command is the same. The noise limits are
    # lifted: this test is about the profile, on however busy a machine (tests/test_noise.py tests them)
    monkeypatch.setattr(cal, "GRID", [(16, 8)])
    monkeypatch.setattr(cal, "TINY", [(8, 1)])
    monkeypatch.setattr(cal, "TIME_BUDGET_S", 0.02)
    monkeypatch.setattr(cal, "NETWORK_BUDGET_S", 0.02)
    monkeypatch.setattr(cal, "MATMUL_SIZE", {"cpu": 128, "cuda": 128})
    monkeypatch.setattr(cal, "REAL_SHAPED", tuple(s for s in cal.REAL_SHAPED if s.resolution == 32))  # the CIFAR two
    out = tmp_path / "here.yaml"
    result = runner.invoke(app, ["calibrate", "--output", str(out), "--name", "here", "--networks", "20",
                                 "--max-load", "1000", "--max-spread", "1000"])
    assert result.exit_code == 0, result.output
    assert ("fitted on 2 real-shaped networks (cut from the zoo's resnet110, resnet56) and 20 synthetic networks timed "
            "whole: median error") in result.output
    profile = load_profile(out)
    assert profile.name == "here" and profile.calibration["device"] == "cpu" and profile.peak_flops["fp32"] > 0
    assert "measured by `scalelab calibrate`" in profile.sources["peak_flops"]
    # a fixed cost for every kind measured on tiny inputs; elementwise is the generic launch overhead
    assert set(profile.overhead_us) == {"dense_conv", "pointwise_conv", "grouped_conv", "depthwise_conv",
                                        "strided_depthwise_conv", "linear", "pool", "norm"}
    assert profile.launch_overhead_us > 0 and all(v > 0 for v in profile.overhead_us.values())
    assert all(0 < v <= 1 for v in profile.efficiency.values())
    assert profile.combine == "sum" and profile.calibration["synthetic_networks"] == 2 * 10
    c = profile.calibration
    assert 0 <= c["fit_median_error"] <= c["fit_max_error"] and c["held_out_median_error"] >= 0
    assert c["competing_load_cpus"] >= 0 and c["round_disagreement"] >= 0
    net = resolve(parse_spec("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {kind: conv, out: 4}"))
    prediction = predict_latency(net, str(out))
    assert prediction.total_ms > 0 and "calibrated on 2 real-shaped and 20 synthetic networks, median fit error" in \
        prediction.method
    zero = runner.invoke(app, ["calibrate", "--networks", "0"])
    assert zero.exit_code == 2 and "Traceback" not in zero.output


# --------------------------------------------------------------------------------------------------
# The fitted model (scalelab.analysis.latency_fit) and the synthetic calibration set


def test_nnls_by_hand():
    import numpy as np

    from scalelab.analysis.latency_fit import nnls

    # min (x1 - 1)^2 + (x2 + 1)^2 + (x1 + x2)^2 over x >= 0: unconstrained x2 would go negative; with
    # x2 = 0, (x1 - 1)^2 + x1^2 is least at x1 = 0.5, and the gradient for x2 there,
    # a2 . (b - a x) = (-1 - 0) + (0 - 0.5) = -1.5 < 0, keeps x2 at its bound.
    x = nnls(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([1.0, -1.0, 0.0]))
    assert x == pytest.approx([0.5, 0.0], abs=1e-12)
    # an exactly solvable positive system is solved exactly
    assert nnls(np.array([[2.0, 0.0], [1.0, 3.0]]), np.array([4.0, 11.0])) == pytest.approx([2.0, 3.0])


def test_features_of_one_conv_by_hand():
    from scalelab.analysis.latency_fit import features

    # 3x3 conv 8 -> 16 on 16x16, no bias, no norm or activation: MACs 16*16*16*8*9 = 294,912, flops
    # 589,824; per output channel 589,824 / 16 = 36,864; bytes 4 * (1,152 weights + 2,048 in + 4,096 out)
    net = resolve(parse_spec("name: t\ninput: {channels: 8, resolution: 16}\nblocks:\n"
                             "  - {name: c, kind: conv, out: 16, bias: false, norm: none, activation: none}"))
    found, at_peak = features(net)
    assert found[("inv_rate", "dense_conv")] == 589_824 and found[("thin", "dense_conv")] == 36_864
    assert found[("overhead", "dense_conv")] == 1 and found[("inv_bandwidth", "")] == 4 * (1_152 + 2_048 + 4_096)
    assert at_peak == 0 and sum(found.values()) == 589_824 + 36_864 + 1 + 29_184


def test_fit_recovers_a_known_machine_from_the_synthetic_set():
    from scalelab.analysis.latency_fit import COLUMNS, features, fit, predict_seconds
    from scalelab.devices.synthetic import synthetic_specs

    # a made-up machine: 100 GFLOP/s peak, every unknown a known amount above its floor
    peak = 1e11
    floors = {c: (1 / peak if c[0] == "inv_rate" else 1e-6 if c[0] == "overhead" else 1e-11 if c[0] == "inv_bandwidth" else 0.0)
              for c in COLUMNS}
    truth = {c: floors[c] * (1.5 + 0.25 * i) + (2e-13 if c[0] == "thin" else 0.0) for i, c in enumerate(COLUMNS)}
    rows = []
    for spec in synthetic_specs(24):
        found, at_peak = features(resolve(spec))
        rows.append((found, at_peak, predict_seconds(found, at_peak, truth, peak)))
    fitted = fit(rows, floors, peak)
    for c in COLUMNS:
        assert fitted[c] == pytest.approx(truth[c], rel=1e-6), c
    # an unknown whose truth is below its floor stays at the floor
    low = {**truth, ("overhead", "norm"): 0.0}
    rows = [(f, p, predict_seconds(f, p, low, peak)) for f, p, _ in rows]
    assert fit(rows, floors, peak)[("overhead", "norm")] == pytest.approx(1e-6)


def test_synthetic_set_is_fixed_varied_and_covers_every_kind():
    from scalelab.analysis.latency_fit import COLUMNS, features
    from scalelab.devices.synthetic import COUNT, synthetic_specs
    from scalelab.spec import zoo_names

    specs = synthetic_specs()
    assert len(specs) == COUNT and [s.model_dump() for s in specs] == [s.model_dump() for s in synthetic_specs()]
    assert not {s.name for s in specs} & set(zoo_names())
    networks = [resolve(s) for s in specs]
    assert {n.input_shape[1] for n in networks} <= set(range(64, 225)) and len({n.input_shape[1] for n in networks}) >= 4
    used = {c for n in networks for c, v in features(n)[0].items() if v > 0}
    assert used == set(COLUMNS)  # every unknown is informed by some network
    kinds = {b.kind for n in networks for b in n.blocks.values()}
    assert {"mbconv", "bottleneck", "residual", "maxpool"} <= kinds
    se = [b.block.se for n in networks for b in n.blocks.values() if b.kind == "mbconv"]
    assert 0 in se and any(v > 0 for v in se)
    assert all(n.input_shape[0] == 3 for n in networks)  # a thin-input stem in every one


def test_profiles_are_data_and_the_roofline_is_analysis():
    """No module of scalelab.devices imports scalelab.analysis or scalelab.build (at any depth of the
    file: lazy imports count too), so analysis -> devices is the only direction between them."""
    import ast
    from pathlib import Path

    import scalelab.devices

    found = []
    for path in Path(scalelab.devices.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.name}: {n}" for n in names if n.startswith(("scalelab.analysis", "scalelab.build"))]
    assert found == []
