"""Measured latency runs on CPU with a tiny network (no timing assertions: only that it runs,
records its conditions, and uses its cache)."""

import math
import sqlite3

import pytest

from scalelab.analysis.noise import NoiseLimits

from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

torch = pytest.importorskip("torch")

from scalelab.analysis.measure import Rounds, measure_latency  # noqa: E402

TINY = resolve(parse_spec("""
name: tiny
input: {channels: 3, resolution: 16}
defaults: {norm: batchnorm, activation: relu}
blocks:
  - {name: stem, kind: conv, out: 8, kernel: 3, stride: 2}
  - {name: left, kind: conv, out: 8, kernel: 1}
  - {name: right, kind: conv, out: 8, kernel: 3, from: stem}
  - {name: sum, kind: add, from: [left, right]}
  - {name: mb, kind: mbconv, out: 8, expand: 2, se: 0.25}
  - {name: gap, kind: global_avgpool}
  - {name: fc, kind: linear, out: 4}
"""))

#: no noise limits: these tests are about what is measured and cached, on however busy a machine
ANY_LOAD = NoiseLimits(max_other_cpus=math.inf, max_spread=math.inf, backoff_s=())
FAST = dict(rounds=Rounds(warmup=1, burst=1, min_rounds=3, max_rounds=3), progress=False, limits=ANY_LOAD)


def cached_rows(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, noisy FROM timings").fetchall()


def test_measures_every_block_and_the_network(tmp_path):
    cache = tmp_path / "latency.sqlite"
    m = measure_latency(TINY, cache_path=cache, **FAST)
    assert list(m.blocks) == list(TINY.blocks)
    for t in [*m.blocks.values(), m.network]:
        assert t.median_ms > 0 and t.q1_ms <= t.median_ms <= t.q3_ms and t.repeats == 3 and not t.cached
    c = m.conditions
    assert c["device"] == "cpu" and c["dtype"] == "fp32" and c["batch"] == 1
    assert c["threads"] == torch.get_num_threads() and c["torch"] == torch.__version__ and c["channels_last"] is False
    assert "median" in m.method and "competing load" in m.method
    assert len(cached_rows(cache)) == len(TINY.blocks) + 1

    again = measure_latency(TINY, cache_path=cache, **FAST)
    assert all(t.cached for t in again.blocks.values()) and again.network.cached
    assert again.blocks["mb"].median_ms == m.blocks["mb"].median_ms

    other = measure_latency(TINY, batch=2, cache_path=cache, whole=False, **FAST)  # new conditions
    assert not any(t.cached for t in other.blocks.values()) and other.network is None


def test_channels_last_bf16_without_cache(tmp_path):
    m = measure_latency(TINY, dtype="bf16", channels_last=True, use_cache=False, blocks=False,
                        cache_path=tmp_path / "c.sqlite", **FAST)
    assert m.network.median_ms > 0 and m.conditions["channels_last"] and not (tmp_path / "c.sqlite").exists()


def test_unmeasurable_dtype():
    with pytest.raises(ScalelabError, match="cannot measure in int8"):
        measure_latency(TINY, dtype="int8", use_cache=False, **FAST)


def test_amp_on_cpu_is_autocast_to_bf16(tmp_path, monkeypatch):
    """--dtype amp: fp32 weights and inputs, run under CPU autocast to bfloat16 (torch's own: a conv's
    output comes out in bf16 inside the timed call)."""
    from scalelab.analysis import measure

    seen = {}
    timed = measure.time_interleaved

    def spy(fns, device, **kw):
        for label, fn in fns.items():
            seen[label] = (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), fn().dtype)
        return timed(fns, device, **kw)

    monkeypatch.setattr(measure, "time_interleaved", spy)
    m = measure_latency(TINY, dtype="amp", use_cache=False, cache_path=tmp_path / "c.sqlite", **FAST)
    assert m.conditions["dtype"] == "amp" and m.conditions["autocast"] == "bfloat16"
    assert "autocast to bfloat16" in m.method and m.network.median_ms > 0
    assert len(seen) == len(TINY.blocks) + 1 and all(s[:2] == (True, torch.bfloat16) for s in seen.values())
    assert seen["stem"][2] == seen["fc"][2] == seen["(network)"][2] == torch.bfloat16  # conv, linear: autocast's
    assert not torch.is_autocast_enabled("cpu")  # only while timing


def test_tf32_on_cpu_is_refused_in_one_message():
    with pytest.raises(ScalelabError, match="cannot measure tf32 on cpu: TF32 is a tensor-core format"):
        measure_latency(TINY, dtype="tf32", use_cache=False, **FAST)


def test_analyze_measure_through_the_cli(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from scalelab.cli import app

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\ninput: {channels: 3, resolution: 8}\nblocks:\n"
                    "  - {name: a, kind: conv, out: 4}\n  - {name: fc, kind: linear, out: 2}\n")
    # --allow-noisy: this test checks the report, not the machine (the noise gate has its own tests)
    result = CliRunner().invoke(app, ["analyze", str(spec), "--measure", "--allow-noisy", "--device", "x86_cpu",
                                      "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert all(r["measured_ms"] > 0 and r["predicted_ms"] > 0 for r in data["rows"])
    m = data["measured_latency"]
    assert m["unit"] == "milliseconds" and m["conditions"]["device"] == "cpu" and m["network_median_ms"] > 0
    assert isinstance(m["noisy"], bool) and m["competing_load_cpus"] >= 0
    assert (tmp_path / "scalelab" / "latency.sqlite").exists()


def test_analyze_measure_amp_and_tf32_through_the_cli(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from scalelab.cli import app

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {name: a, kind: conv, out: 4}\n")
    amp = CliRunner().invoke(app, ["analyze", str(spec), "--measure", "--allow-noisy", "--dtype", "amp", "-f", "json"])
    assert amp.exit_code == 0, amp.output
    assert '"autocast": "bfloat16"' in amp.stdout
    tf32 = CliRunner().invoke(app, ["analyze", str(spec), "--measure", "--dtype", "tf32"])
    assert tf32.exit_code == 2 and "Traceback" not in tf32.output
    assert "cannot measure tf32 on cpu" in tf32.output
