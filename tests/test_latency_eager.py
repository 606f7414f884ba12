"""The eager-execution queue with stand-in numbers: flat then linear in batch, host-bound at batch 1,
autocast's casts, TF32 defaults, per-block figures that add up, and the error each prediction carries."""

import pytest

from scalelab.analysis.latency import predict_latency, queue, regime
from scalelab.devices import parse_profile
from scalelab.devices.profile import RegimeError
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

# 1 TFLOP/s fp32 (4 fp16), 100 GB/s, no fractions or fixed device cost: 100 us per op on the host
EAGER = parse_profile("""
name: eager
kind: gpu
peak_flops: {fp32: 1.0e12, tf32: 2.0e12, fp16: 4.0e12}
memory_bandwidth: 1.0e11
achievable_compute: 1
achievable_bandwidth: 1
launch_overhead_us: 0
host_us: 100
sources: {peak_flops: made up for the test, memory_bandwidth: made up for the test}
""")
H = 0.1  # ms
N = 10  # 1x1 convs 16 -> 16 on 32x32, no bias, no norm


def chain(n: int = N):
    blocks = "\n".join(f"  - {{name: c{i}, kind: conv, out: 16, kernel: 1, bias: false, norm: none, activation: none}}"
                       for i in range(n))
    return resolve(parse_spec(f"name: chain\ninput: {{channels: 16, resolution: 32}}\nblocks:\n{blocks}"))


def device_ms(batch: int, nbytes: int = 4, peak: float = 1e12) -> float:
    """One conv by hand: 256 weights, 16 x 32 x 32 = 16,384 elements in and out per sample; MACs
    16 x 16 x 1024 = 262,144 per sample (2 FLOPs each). Memory-bound at these figures."""
    memory = nbytes * (256 + batch * 2 * 16_384) / 1e11
    compute = batch * 2 * 262_144 / peak
    return 1e3 * max(memory, compute)


def test_flat_then_linear_in_batch():
    # op k is issued at k x H; while an op's device time is under H the device waits for the host:
    # end = N x H + d (the last op alone). Once it is over H the device never waits: end = H + N x d.
    net = chain()
    one = predict_latency(net, EAGER, batch=1).total_ms
    assert one == pytest.approx(N * H + device_ms(1))
    eight = predict_latency(net, EAGER, batch=8).total_ms
    assert eight == pytest.approx(N * H + device_ms(8)) and eight < 1.1 * one  # flat: the host sets the pace
    big, bigger = (predict_latency(net, EAGER, batch=b).total_ms for b in (1000, 2000))
    assert big == pytest.approx(H + N * device_ms(1000))
    assert bigger - big == pytest.approx(N * (device_ms(2000) - device_ms(1000)))  # linear: the device's
    assert predict_latency(net, EAGER, batch=1000).regime == "device_bound" == regime(64)
    assert regime(8) == "host_bound" and regime(9) == regime(63) == "transition"


def test_host_bound_at_batch_1_for_many_small_layers():
    net = chain(40)
    p = predict_latency(net, EAGER, batch=1)
    layers = [t for b in p.blocks.values() for t in b.layers]
    assert p.total_ms == pytest.approx(40 * H + device_ms(1))
    assert p.device_ms == pytest.approx(40 * device_ms(1)) and p.device_ms < p.total_ms / 10
    assert all(t.bound == "host" for t in layers[1:])  # the device waited for each one
    # each block moves the end by one host time (the first: its host time and its own kernel)
    assert [b.ms for b in p.blocks.values()][1:] == pytest.approx([H] * 39)


def test_autocast_casts_make_amp_no_faster_where_they_dominate():
    net = chain()
    fp32, amp, fp16 = (predict_latency(net, EAGER, dtype, batch=1) for dtype in ("fp32", "amp", "fp16"))
    # amp: a cast kernel per weight and one for the input: 2N + 1 ops issued, the last a conv at fp16
    assert amp.total_ms == pytest.approx((2 * N + 1) * H + device_ms(1, nbytes=2, peak=4e12))
    assert amp.total_ms > fp32.total_ms
    assert fp16.total_ms == pytest.approx(N * H + device_ms(1, nbytes=2, peak=4e12))  # a half model: no casts
    casts = [t for b in amp.blocks.values() for t in b.layers if "autocast cast" in t.label]
    assert len(casts) == N + 1
    # the input's cast reads 16,384 fp32 values and writes them as fp16: 6 bytes each at 100 GB/s
    assert casts[0].memory_ms == pytest.approx(1e3 * 6 * 16_384 / 1e11)
    assert "autocast" in amp.method


def test_amp_weights_are_fp32_plus_their_cached_copy():
    from scalelab.analysis.memory import inference_memory

    net = chain()
    assert inference_memory(net, "amp").weight_bytes == N * 256 * (4 + 2)
    assert inference_memory(net, "fp16").weight_bytes == N * 256 * 2


def test_fp32_on_a_tf32_device_runs_convolutions_as_tf32():
    net = resolve(parse_spec("name: t\ninput: {channels: 16, resolution: 32}\nblocks:\n"
                             "  - {name: c, kind: conv, out: 16, kernel: 1, bias: false, norm: none, activation: none}\n"
                             "  - {name: f, kind: flatten}\n  - {name: fc, kind: linear, out: 1000, bias: false}"))
    fp32, tf32 = (predict_latency(net, EAGER, dtype, batch=4096) for dtype in ("fp32", "tf32"))
    conv = fp32.blocks["c"].layers[0]
    assert conv.compute_ms == pytest.approx(1e3 * 4096 * 2 * 262_144 / 2e12)  # the TF32 peak
    fc = fp32.blocks["fc"].layers[0]  # matrix multiplies stay fp32 (PyTorch's default since 1.12)
    assert fc.compute_ms == pytest.approx(1e3 * 4096 * 2 * 16_384 * 1000 / 1e12)
    assert tf32.blocks["fc"].layers[0].compute_ms == pytest.approx(fc.compute_ms / 2)
    assert "convolutions as TF32" in fp32.method
    with pytest.raises(ScalelabError, match="device 't4' has no tf32 figure"):
        predict_latency(net, "t4", "tf32")


@pytest.mark.parametrize("batch", [1, 16, 256])
@pytest.mark.parametrize("dtype", ["fp32", "amp"])
def test_per_block_figures_add_up_to_the_queue_end(batch, dtype):
    from scalelab.spec.load import load_spec

    p = predict_latency(resolve(load_spec("resnet50")), "t4", dtype, batch)
    ops = [t for b in p.blocks.values() for t in b.layers]
    # the queue's end in closed form: max over k of (issue time of op k + device times from k on)
    issued, ends = 0.0, []
    for k, t in enumerate(ops):
        issued += t.host_ms
        ends.append(issued + sum(u.device_ms for u in ops[k:]))
    assert p.total_ms == pytest.approx(max(ends), rel=1e-9)
    assert sum(b.ms for b in p.blocks.values()) == pytest.approx(p.total_ms, rel=1e-12)


def test_queue_by_hand():
    from scalelab.analysis.latency import LayerTime
    from scalelab.blocks.layers import LatencyClass

    def op(host, device):
        return LayerTime("x", LatencyClass.ELEMENTWISE, device, 0.0, 0.0, host_ms=host)
    # issued at 1, 2, 3; device 0.5, 3, 0.5: ends 1.5, 5, 5.5 -> moves of 1.5, 3.5, 0.5
    assert [t.added_ms for t in queue([op(1, 0.5), op(1, 3), op(1, 0.5)])] == pytest.approx([1.5, 3.5, 0.5])


def test_every_prediction_carries_its_regimes_error():
    net = chain()
    p = predict_latency(net, EAGER, batch=1)
    assert p.error == 0.5 and "records no held-out error" in p.error_text  # an unvalidated profile says so
    assert p.band() == pytest.approx((p.total_ms * 0.5, p.total_ms * 1.5))
    stated = EAGER.model_copy(update={"errors": {"host_bound": RegimeError(stated=0.1, median=0.08, basis="by hand")}})
    assert predict_latency(net, stated, batch=8).error == 0.1 and "by hand; host-bound" in predict_latency(net, stated).error_text
    assert predict_latency(net, stated, batch=9).error == 0.5  # a regime it states nothing for: the wide default
