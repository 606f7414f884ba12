"""Calibration on real-shaped networks: what the calibration set is cut from, that it covers what the
held-out zoo networks are made of, that a network validated on is never fitted on, and the whole
calibration run on injected timings (no real timing is asserted anywhere here)."""

from __future__ import annotations

import pytest

from scalelab.analysis.latency_fit import COLUMNS, features, predict_seconds
from scalelab.blocks.layers import LatencyClass, latency_of
from scalelab.devices.real_shaped import HELD_OUT, SOURCES, Source, real_shaped_specs
from scalelab.graph import resolve
from scalelab.spec import load_spec


def _layers(network):
    """(latency class, output channels, output height) of every conv layer of a network."""
    found = []
    for block in network.inference_blocks():
        for cost in block.costs:
            latency_class, _ = latency_of(cost.node)
            if latency_class.value.endswith("conv"):
                found.append((latency_class, cost.node.out_ch, cost.out_elems // cost.node.out_ch))
    return found


def test_a_cut_keeps_the_shapes_and_caps_the_depth():
    # resnet50 cut to one bottleneck per stage at 160 px: the stem, pool, 4 bottlenecks, avgpool and fc; the
    # stages keep their widths (256, 512, 1024, 2048) and strides (160 -> 80 -> 40 -> 40 -> 20 -> 10 -> 5)
    (spec,) = real_shaped_specs(sources=(Source("resnet50", 1, 160),))
    network = resolve(spec)
    assert spec.name == "resnet50_r1_160" and network.input_shape == (3, 160, 160)
    assert list(network.blocks) == ["stem", "pool", "layer1.0", "layer2.0", "layer3.0", "layer4.0", "avgpool", "fc"]
    assert [network.blocks[f"layer{i}.0"].out_shape for i in range(1, 5)] == [
        (256, 40, 40), (512, 20, 20), (1024, 10, 10), (2048, 5, 5)]
    # a cap above a stage's repeats leaves it whole: mobilenet_v1's sep4 repeats 6 times, sep1 once
    (cut,) = real_shaped_specs(sources=(Source("mobilenet_v1", 2, 224),))
    stages = [b for b in resolve(cut).blocks if b.startswith("sep")]
    assert stages == ["sep1.0", "sep2.0", "sep2.1", "sep3.0", "sep3.1", "sep4.0", "sep4.1", "sep5.0", "sep5.1"]


def test_dropped_blocks_and_training_only_heads_are_left_out():
    source = Source("googlenet_paper", 1, 224, ("lrn1", "lrn2", "inception4b", "inception4c", "inception4d"))
    (spec,) = real_shaped_specs(sources=(source,))
    names = set(resolve(spec).blocks)
    assert not names & {"lrn1", "lrn2", "inception4b", "inception4c", "inception4d"}
    assert not any(n.startswith(("aux1", "aux2")) for n in names)  # training-only, one hangs off inception4d
    assert {"inception3a", "inception4a", "inception4e", "inception5b", "fc"} <= names
    from scalelab.errors import ScalelabError

    with pytest.raises(ScalelabError, match="googlenet_paper has no block inception9"):
        real_shaped_specs(sources=(Source("googlenet_paper", 1, 224, ("inception9",)),))


def test_held_out_networks_are_never_a_source():
    assert not {s.zoo for s in SOURCES} & set(HELD_OUT)
    # a source cut from a network that is held out is left out, whatever the held-out list
    kept = real_shaped_specs(held_out=("resnet50", "mobilenet_v1"))
    assert len(kept) == len(SOURCES) - sum(s.zoo in ("resnet50", "mobilenet_v1") for s in SOURCES)
    assert not [s.name for s in kept if s.name.startswith(("resnet50_", "mobilenet_v1_"))]
    # and no real-shaped network is a held-out one under another name: their layer sums all differ
    held = [features(resolve(load_spec(name)))[0] for name in HELD_OUT]
    for spec in real_shaped_specs():
        assert features(resolve(spec))[0] not in held, spec.name


def test_the_real_shaped_set_covers_what_the_held_out_networks_are_made_of():
    real = [resolve(s) for s in real_shaped_specs()]
    held = {name: resolve(load_spec(name)) for name in HELD_OUT}
    used = {c for n in real for c, v in features(n)[0].items() if v}
    for name, network in held.items():
        assert {c for c, v in features(network)[0].items() if v} <= used, name
    kinds = {b.kind for n in real for b in n.blocks.values()}
    for name, network in held.items():
        own = {b.kind for b in network.inference_blocks()} - {"shuffle_unit"}  # shufflenet's own: no other network has it
        assert own <= kinds, (name, own - kinds)
    # the shapes the random synthetic set (at most 320 channels) never reaches
    layers = [layer for n in real for layer in _layers(n)]
    assert any(c == LatencyClass.POINTWISE_CONV and n >= 2048 and size == 49 for c, n, size in layers)  # resnet50 @224
    assert any(c == LatencyClass.DEPTHWISE_CONV and size == 112 * 112 for c, n, size in layers)  # mobilenet at 224
    assert any(c == LatencyClass.GROUPED_CONV and n >= 512 for c, n, size in layers)


def test_calibrate_fits_on_the_calibration_set_and_validates_on_the_held_out_networks(monkeypatch):
    """The whole calibration with injected timings: every network 'takes' what a known machine would
    take; the fit sees the real-shaped and synthetic networks, never a held-out one, and the held-out
    networks are predicted to the known machine's times."""
    pytest.importorskip("torch")
    from scalelab.analysis import calibrate as cal
    from scalelab.analysis.noise import Noise

    peak, overhead_us, bandwidth = 1e11, 2.0, 2e10
    floors = {c: (1 / peak if c[0] == "inv_rate" else overhead_us / 1e6 if c[0] == "overhead"
                  else 1 / bandwidth if c[0] == "inv_bandwidth" else 0.0) for c in COLUMNS}
    truth = {c: floors[c] * (1.2 + 0.1 * i) + (3e-13 if c[0] == "thin" else 0.0) for i, c in enumerate(COLUMNS)}
    timed: list[list[str]] = []

    def timed_whole(networks, device, limits, allow_noisy, budget_s):
        timed.append([n.spec.name for n in networks])
        return [predict_seconds(*features(n), truth, peak) for n in networks], Noise(0.01, 0.01, 0.05), 8

    monkeypatch.setattr(cal, "_check_quiet", lambda limits, allow_noisy: None)
    monkeypatch.setattr(cal, "_matmul", lambda st: st.update(peak_flops={"fp32": peak}))
    monkeypatch.setattr(cal, "_overheads", lambda st: st.update(overhead_us={k: overhead_us for k in COLUMN_CLASSES}))
    monkeypatch.setattr(cal, "_bandwidth", lambda st: st.update(memory_bandwidth=bandwidth))
    monkeypatch.setattr(cal, "_timed_whole", timed_whole)
    profile = cal.calibrate(progress=False, networks=24)
    [names] = timed  # one interleaved set: the calibration networks, then the held-out ones
    fitted, validated = names[:-len(HELD_OUT)], names[-len(HELD_OUT):]
    assert fitted == [s.name for s in real_shaped_specs()] + [f"synthetic_{i}_{f}" for i, f in
                                                             zip(range(24), ["dense", "grouped", "mobile"] * 8)]
    assert validated == list(HELD_OUT) and not set(fitted) & set(HELD_OUT)
    c = profile.calibration
    assert c["real_shaped_networks"] == len(SOURCES) and c["synthetic_networks"] == 24
    assert c["real_shaped_from"] == sorted({s.zoo for s in SOURCES})
    assert c["fit_median_error"] < 1e-4 and c["validation_median_error"] < 1e-3  # the known machine (figures rounded)
    assert f"{len(SOURCES)} real-shaped networks (cut from the zoo's densenet121" in profile.sources["efficiency"]


COLUMN_CLASSES = tuple(c for c in LatencyClass if c is not LatencyClass.FREE)


def test_a_custom_validation_list_is_left_out_of_the_fit(monkeypatch):
    pytest.importorskip("torch")
    from scalelab.analysis import calibrate as cal

    specs = cal.calibration_specs(3, ("resnet50", "densenet121"))
    names = [s.name for s in specs]
    assert names[-3:] == ["synthetic_0_dense", "synthetic_1_grouped", "synthetic_2_mobile"]
    assert not [n for n in names if n.startswith(("resnet50_", "densenet121_"))]
    assert len(names) == 3 + len(SOURCES) - sum(s.zoo in ("resnet50", "densenet121") for s in SOURCES)


def test_a_slow_dtype_is_timed_on_a_smaller_multiply(monkeypatch):
    """bf16 emulated on a CPU takes seconds per 1024 multiply: probed at 256, it is timed at 256."""
    pytest.importorskip("torch")
    import torch

    from scalelab.analysis import calibrate as cal
    from scalelab.analysis.measure import Timing

    sizes: list[int] = []

    def fake(fn, device, **kwargs):  # a machine whose multiply of n takes n^3 x seconds_per_cube
        n = fn().shape[0]
        sizes.append(n)
        ms = 1e3 * n**3 * seconds_per_cube
        return Timing(ms, ms, ms, 1, min_ms=ms)

    monkeypatch.setattr(cal, "time_callable", fake)
    seconds_per_cube = 1e-11  # 256: 0.17 ms, x 64 = 11 ms for 1024, under 50 ms: timed at 1024
    assert cal.matmul_peak(1024, "cpu", torch.float32) == pytest.approx(2 / 1e-11) and sizes == [256, 1024]
    sizes.clear()
    seconds_per_cube = 2e-9  # 256: 34 ms, x 64 = 2.1 s for 1024: emulated, timed at 256
    assert cal.matmul_peak(1024, "cpu", torch.float32) == pytest.approx(2 / 2e-9) and sizes == [256, 256]


def test_the_readme_names_what_calibrate_fits_on():
    from pathlib import Path

    from scalelab.devices.synthetic import COUNT

    readme = Path(__file__).resolve().parents[1].joinpath("README.md").read_text(encoding="utf-8")
    start = readme.index("- *Calibrated* (`scalelab calibrate`)")
    bullet = " ".join(readme[start:readme.index("\n- *", start + 1)].split())
    assert f"{len(SOURCES)} *real-shaped* ones" in bullet and f"{COUNT} *synthetic* ones" in bullet
    for zoo in {s.zoo for s in SOURCES} - {"mobilenet_v3_small"}:  # written "mobilenet_v3_large and _small"
        assert zoo in bullet, zoo
    assert "mobilenet_v3_large and _small" in bullet
    assert ", ".join(HELD_OUT[:-1]) + " and " + HELD_OUT[-1] in bullet  # the networks validated on
