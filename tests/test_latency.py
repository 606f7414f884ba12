"""Predicted latency: the roofline worked out by hand for one layer, per-kind efficiency, and
monotonicity in width and resolution."""

import pytest

from scalelab.analysis.latency import latency_class, predict_latency
from scalelab.blocks import layers as L
from scalelab.devices import parse_profile
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

PROFILE = parse_profile("""
name: toy
kind: gpu
peak_flops: {fp32: 1.0e9, fp16: 4.0e9}
memory_bandwidth: 1.0e8
achievable_compute: 0.5
achievable_bandwidth: 0.5
launch_overhead_us: 10
efficiency: {depthwise_conv: 0.1}
sources: {peak_flops: made up for the test, memory_bandwidth: made up for the test}
""")


def one_conv(extra: str, channels: int = 8, resolution: int = 16):
    return resolve(parse_spec(f"name: t\ninput: {{channels: {channels}, resolution: {resolution}}}\n"
                              f"blocks:\n  - {{name: c, kind: conv, norm: none, activation: none, {extra}}}"))


def test_dense_conv_by_hand():
    # 3x3 conv 8 -> 16 on 16x16, same padding, with bias: MACs = 16*16*16*8*9 = 294,912;
    # ops = 4,096 bias adds; flops = 2*294,912 + 4,096 = 593,920 at 0.5 GFLOP/s = 1.18784 ms.
    # bytes = 4 * (16*8*9 + 16 + 8*256 + 16*256) = 4 * 7,312 = 29,248 at 50 MB/s = 0.58496 ms.
    # time = max + 10 us = 1.19784 ms (compute bound).
    p = predict_latency(one_conv("out: 16, kernel: 3"), PROFILE)
    assert p.total_ms == pytest.approx(1.19784, rel=1e-12)
    assert p.blocks["c"].layers[0].bound == "compute"
    # batch 2: flops 1,187,840 -> 2.37568 ms; bytes 4 * (1,168 + 2*6,144) = 53,840 -> 1.0768 ms
    assert predict_latency(one_conv("out: 16, kernel: 3"), PROFILE, batch=2).total_ms == pytest.approx(2.38568)
    # fp16: 4 GFLOP/s peak -> 0.29696 ms compute; 2 bytes -> 0.29248 ms memory; + 0.01
    assert predict_latency(one_conv("out: 16, kernel: 3"), PROFILE, "fp16").total_ms == pytest.approx(0.30696)


def test_depthwise_efficiency_and_memory_bound():
    # depthwise 3x3 on 8x16x16: MACs = 8*256*9 = 18,432, ops 2,048 (bias); flops 38,912 at
    # 0.5 GFLOP/s * 0.1 = 0.77824 ms. bytes 4 * (72 + 8 + 2048 + 2048) = 16,704 -> 0.33408 ms.
    p = predict_latency(one_conv("out: 8, kernel: 3, depthwise: true"), PROFILE)
    assert p.total_ms == pytest.approx(0.77824 + 0.01)
    # pointwise 1x1 8 -> 1: MACs 2,048, ops 256, flops 4,352 -> 0.008704 ms; bytes
    # 4 * (8 + 1 + 2048 + 256) = 9,252 -> 0.18504 ms: memory bound.
    p = predict_latency(one_conv("out: 1, kernel: 1"), PROFILE)
    assert p.blocks["c"].layers[0].bound == "memory"
    assert p.total_ms == pytest.approx(0.18504 + 0.01)


def test_layer_kinds():
    assert latency_class(L.Conv(8, 8, (3, 3), groups=8)) == "depthwise_conv"
    assert latency_class(L.Conv(8, 16, (3, 3), groups=2)) == "grouped_conv"
    assert latency_class(L.Conv(8, 16, (1, 1))) == "pointwise_conv"
    assert latency_class(L.Flatten()) == "free" and latency_class(L.Merge("add")) == "elementwise"
    assert latency_class(L.Conv(8, 8, (3, 3), stride=(2, 2), groups=8)) == "strided_depthwise_conv"
    assert latency_class(L.Pool("max", (3, 3), (2, 2))) == "pool" and latency_class(L.BatchNorm(4)) == "norm"
    assert latency_class(L.Activation("relu")) == "elementwise"


KINDED = parse_profile("""
name: kinded
kind: cpu
peak_flops: {fp32: 1.0e9}
memory_bandwidth: 1.0e8
achievable_compute: 0.5
achievable_bandwidth: 0.5
launch_overhead_us: 10
efficiency: {depthwise_conv: 0.1, pointwise_conv: 0.8}
overhead_us: {depthwise_conv: 50, norm: 20}
half_efficiency_channels: {pointwise_conv: 8}
sources: {peak_flops: made up for the test, memory_bandwidth: made up for the test}
""")


def test_fixed_cost_per_kind_and_strided_depthwise_fallback():
    # depthwise 3x3 on 8x16x16 as in test_depthwise_efficiency_and_memory_bound: compute 0.77824 ms,
    # now + its own 50 us fixed cost
    assert predict_latency(one_conv("out: 8, kernel: 3, depthwise: true"), KINDED).total_ms == pytest.approx(0.77824 + 0.05)
    # stride 2 (padding 1): 8x8 output, MACs 8*64*9 = 4,608, ops 512 (bias), flops 9,728 at 0.05 GFLOP/s
    # = 0.19456 ms; bytes 4 * (72 + 8 + 2048 + 512) = 10,560 -> 0.2112 ms (memory bound). The profile
    # names no strided figure: depthwise's efficiency and fixed cost apply.
    p = predict_latency(one_conv("out: 8, kernel: 3, stride: 2, depthwise: true"), KINDED)
    assert p.blocks["c"].layers[0].latency_class == "strided_depthwise_conv" and p.total_ms == pytest.approx(0.2112 + 0.05)
    # batchnorm falls under norm (20 us); ReLU keeps the launch overhead (10 us). On 8x16x16: batchnorm
    # ops 2*2048, flops 4,096 -> 0.008192 ms; bytes 4 * (16 + 2*2048) = 16,448 -> 0.32896 ms. ReLU: bytes
    # 4 * 4096 = 16,384 -> 0.32768 ms.
    net = resolve(parse_spec("name: t\ninput: {channels: 8, resolution: 16}\nblocks:\n"
                             "  - {name: c, kind: conv, out: 8, kernel: 1, norm: batchnorm, activation: relu}"))
    norm, relu = predict_latency(net, KINDED).blocks["c"].layers[1:]
    assert norm.ms == pytest.approx(0.32896 + 0.02) and relu.ms == pytest.approx(0.32768 + 0.01)
    assert "depthwise_conv 50" in predict_latency(net, KINDED).method


def test_thin_layers_reach_less_of_the_peak():
    # 1x1 conv 8 -> 8 on 64x64, no bias: MACs 8*8*4096 = 262,144, flops 524,288. Efficiency
    # 0.8 * 8 / (8 + 8) = 0.4 -> 0.5 GFLOP/s * 0.4 = 0.2 GFLOP/s -> 2.62144 ms; bytes
    # 4 * (64 + 2 * 32,768) = 262,400 -> 5.248 ms at 50 MB/s: memory bound, so use a 24-wide output
    # instead: MACs 8*24*4096 = 786,432, flops 1,572,864; efficiency 0.8 * 24 / 32 = 0.6 -> 0.3 GFLOP/s
    # -> 5.24288 ms; bytes 4 * (192 + 32,768 + 98,304) = 525,056 -> 10.50112 ms. Still memory bound:
    # check the compute time itself.
    p = predict_latency(one_conv("out: 24, kernel: 1, bias: false", resolution=64), KINDED)
    assert p.blocks["c"].layers[0].compute_ms == pytest.approx(5.24288)
    assert "n / (n + half)" in p.method


SUMMED = parse_profile("""
name: summed
kind: cpu
peak_flops: {fp32: 1.0e9}
memory_bandwidth: 1.0e8
achievable_compute: 0.5
achievable_bandwidth: 0.5
launch_overhead_us: 10
efficiency: {depthwise_conv: 0.1, dense_conv: 0.8}
overhead_us: {depthwise_conv: 50}
half_efficiency_channels: {dense_conv: 16}
combine: sum
sources: {peak_flops: made up for the test, memory_bandwidth: made up for the test}
calibration: {synthetic_networks: 3, fit_median_error: 0.05, fit_max_error: 0.1, held_out_median_error: 0.125}
""")


def test_fitted_form_sums_compute_memory_and_fixed_cost():
    # the conv of test_dense_conv_by_hand (flops 593,920, bytes 29,248), now at 0.5 GFLOP/s x 0.8 x
    # 16 / (16 + 16) = 0.2 GFLOP/s -> 2.9696 ms, plus bytes at 50 MB/s 0.58496 ms, plus 10 us: summed
    p = predict_latency(one_conv("out: 16, kernel: 3"), SUMMED)
    assert p.total_ms == pytest.approx(2.9696 + 0.58496 + 0.01, rel=1e-12)
    # depthwise (test_depthwise_efficiency_and_memory_bound): 0.77824 + 0.33408 + its own 50 us
    assert predict_latency(one_conv("out: 8, kernel: 3, depthwise: true"), SUMMED).total_ms == pytest.approx(1.16232)
    assert p.method.startswith("fitted model on profile summed (calibrated on 3 synthetic networks, median fit "
                               "error 5.0%, leave-one-out 12.5%): per layer sum of compute")


def test_free_layers_and_method():
    net = resolve(parse_spec("name: t\ninput: {channels: 4, resolution: 2}\nblocks:\n"
                             "  - {name: f, kind: flatten}\n  - {name: d, kind: dropout, p: 0.5}"))
    p = predict_latency(net, PROFILE)
    assert p.total_ms == 0 and p.blocks["f"].kernels == 0
    assert p.method.startswith("roofline on profile toy")


def test_missing_dtype_and_bad_device():
    with pytest.raises(ScalelabError, match="device 't4' has no bf16 figure"):
        predict_latency(one_conv("out: 4"), "t4", dtype="bf16")
    with pytest.raises(ScalelabError, match="did you mean 'a100'"):
        predict_latency(one_conv("out: 4"), "a10")


MOBILE = """
name: m
input: {{channels: 3, resolution: 32}}
defaults: {{norm: batchnorm, activation: relu6}}
blocks:
  - {{name: stem, kind: conv, out: {c0}, kernel: 3, stride: 2}}
  - {{stage: s1, repeat: 2, stride: 2, block: {{kind: mbconv, out: {c1}, expand: 6, se: 0.25}}}}
  - {{name: res, kind: bottleneck, out: {c2}, mid: {c1}}}
  - {{name: pool, kind: maxpool, kernel: 2}}
  - {{name: head, kind: global_avgpool}}
  - {{name: fc, kind: linear, out: 10}}
"""


@pytest.mark.parametrize("device", ["t4", "x86_cpu", "jetson_orin_nano", KINDED, SUMMED])
@pytest.mark.parametrize("width", [4, 8, 24])
def test_doubling_width_or_resolution_never_lowers_the_prediction(device, width):
    spec = parse_spec(MOBILE.format(c0=width, c1=width, c2=2 * width))
    wide = parse_spec(MOBILE.format(c0=2 * width, c1=2 * width, c2=4 * width))
    base = predict_latency(resolve(spec), device)
    for bigger in (predict_latency(resolve(wide), device), predict_latency(resolve(spec, 64), device)):
        if base.host_ms:  # the eager queue: host-bound, the total stays flat until the device takes longer
            assert bigger.total_ms >= base.total_ms * (1 - 1e-12)
            continue  # and a block's share can shrink: the device's backlog hides its host time
        assert bigger.total_ms > base.total_ms
        for name, block in base.blocks.items():
            assert bigger.blocks[name].ms >= block.ms


def test_resnet50_resolution_monotone():
    spec = parse_spec(open("specs/resnet50.yaml").read())
    # batch 256: device-bound (at batch 8 the host's issue times set the pace whatever the resolution)
    times = [predict_latency(resolve(spec, r), "a100", "fp16", batch=256).total_ms for r in (64, 128, 224)]
    assert times[0] < times[1] < times[2]


# --------------------------------------------------------------------------------------------------
# Through `scalelab analyze`


def test_analyze_with_device_columns(tmp_path):
    import json

    from typer.testing import CliRunner

    from scalelab.cli import app

    result = CliRunner().invoke(app, ["analyze", "resnet18", "-r", "64", "--device", "t4", "--dtype", "fp16",
                                      "--batch", "8", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["conditions"]["dtype"] == "fp16" and data["conditions"]["bytes_per_element"] == 2
    unit = data["units"]["predicted_ms"]  # the error of batch 8's regime (host-bound) first, then how
    assert unit.startswith("milliseconds, each ±") and "host-bound regime" in unit
    assert "predicted by roofline on profile t4" in unit
    assert data["total"]["weight_bytes"] == 11_689_512 * 2  # torchvision's resnet18 parameters at fp16
    assert data["memory"]["unit"] == "bytes" and data["memory"]["peak_block"] in [r["name"] for r in data["rows"]]
    assert data["predicted_latency"]["device"] == "t4" and data["predicted_latency"]["batch"] == 8
    assert sum(r["predicted_ms"] for r in data["rows"]) == pytest.approx(data["predicted_latency"]["total_ms"], abs=1e-4)  # JSON rounds to 1e-6
    table = CliRunner().invoke(app, ["analyze", "resnet18", "-r", "64", "--device", "t4"])
    assert "Pred. ms" in table.output and "activation peak" in table.output and "roofline on profile t4" in table.output


def test_analyze_with_a_bad_profile_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from scalelab.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: gpu\npeak_flops: {fp32: -1}\n")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["analyze", "resnet18", "--device", str(bad), "-o", str(out)])
    assert result.exit_code == 2 and f"{bad}:1:1: device profile: missing required field" in result.output
    assert "Traceback" not in result.output and not out.exists()
    result = CliRunner().invoke(app, ["analyze", "resnet18", "--dtype", "fp64"])
    assert result.exit_code == 2 and "unknown dtype 'fp64'" in result.output


def test_prediction_path_does_not_import_torch(cli_fresh):
    out, heavy = cli_fresh(["analyze", "resnet50", "--device", "t4", "--mode", "train", "-f", "csv"])
    assert heavy == [] and "predicted_ms" in out.splitlines()[0]
