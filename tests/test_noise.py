"""Measuring on a busy machine: the competing-load probe, the back-off and refusal, the noisy-aware
measurement cache, and calibration refusing what it cannot fit or measure cleanly."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from multiprocessing import get_context

import pytest

from cli_helpers import assert_refused, invoke
from scalelab.analysis import timing_cache
from scalelab.analysis.noise import LoadWindow, Noise, NoiseLimits, NoisyMachine, until_quiet

SPIN = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"


def busy(count: int, seconds: float) -> list[subprocess.Popen]:
    """``count`` processes that each keep a CPU busy for ``seconds``."""
    return [subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=seconds)]) for _ in range(count)]


def test_a_competing_process_is_seen_as_load():
    procs = busy(1, 3.0)
    try:
        import time

        time.sleep(0.3)  # let it start spinning
        with LoadWindow() as window:
            time.sleep(1.0)
    finally:
        for p in procs:
            p.kill()
    assert window.other_cpus >= 0.7  # one spinning process: about one CPU (plus whatever else runs)


def test_until_quiet_backs_off_then_keeps_a_clean_attempt():
    seen, waits = iter([Noise(1.5, 0.02), Noise(0.1, 0.30), Noise(0.1, 0.02)]), []
    result, noise = until_quiet(lambda: ("timings", next(seen)), "measuring x", NoiseLimits(0.5, 0.1, (1.0, 2.0, 4.0)),
                                sleep=waits.append)
    assert result == "timings" and noise == Noise(0.1, 0.02) and waits == [1.0, 2.0]


def test_until_quiet_refuses_naming_the_load_and_the_spread():
    waits = []
    with pytest.raises(NoisyMachine) as refused:
        until_quiet(lambda: (None, Noise(1.87, 0.34)), "calibrate", NoiseLimits(0.5, 0.1, (1.0, 2.0)), sleep=waits.append)
    message = str(refused.value)
    assert waits == [1.0, 2.0]
    assert "calibrate: the machine is too busy to measure" in message
    assert "other processes kept 1.87 CPUs busy (limit 0.5)" in message
    assert "repeated rounds of timings disagree by 34% (limit 10%)" in message
    assert "after 3 attempts in " in message and "(3 s of it waiting between attempts)" in message
    assert "--allow-noisy" in message
    kept, noise = until_quiet(lambda: ("last", Noise(1.87, 0.34)), "x", NoiseLimits(0.5, 0.1, ()), allow_noisy=True)
    assert kept == "last" and noise.problems(NoiseLimits(0.5, 0.1)) != []


# --------------------------------------------------------------------------------------------------
# The cache


def test_a_noisy_entry_is_never_served_as_clean(tmp_path):
    path = tmp_path / "cache.sqlite"
    timing_cache.store(path, {"k": {"median_ms": 9.0}}, noisy=True, other_cpus=1.9)
    assert timing_cache.lookup(path, ["k"]) == {}  # noisy: measured again, not served
    timing_cache.store(path, {"k": {"median_ms": 1.0}}, noisy=False, other_cpus=0.0)
    assert timing_cache.lookup(path, ["k"]) == {"k": {"median_ms": 1.0}}  # clean replaces noisy
    timing_cache.store(path, {"k": {"median_ms": 7.0}}, noisy=True, other_cpus=1.5)
    assert timing_cache.lookup(path, ["k"]) == {"k": {"median_ms": 1.0}}  # noisy never replaces clean
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT noisy, other_cpus FROM timings").fetchall() == [(0, 0.0)]


def _writer(args):
    path, worker = args
    for i in range(40):
        timing_cache.store(path, {f"{worker}-{i}": {"median_ms": float(i)}}, noisy=False, other_cpus=0.0)
        timing_cache.lookup(path, [f"{worker}-{i}"])


def test_the_cache_is_safe_with_several_processes(tmp_path):
    path = tmp_path / "cache.sqlite"
    with get_context("spawn").Pool(4) as pool:
        pool.map(_writer, [(path, w) for w in range(4)])
    keys = [f"{w}-{i}" for w in range(4) for i in range(40)]
    assert len(timing_cache.lookup(path, keys)) == 160


def test_a_new_cache_file_is_set_up_by_one_process_at_a_time(tmp_path):
    # two processes switching a new file to WAL at once make one fail at once, busy timeout or not
    import threading

    from filelock import FileLock

    path = tmp_path / "cache.sqlite"
    with FileLock(f"{path}.lock"):  # another process is setting the file up
        writer = threading.Thread(target=timing_cache.store, args=(path, {"k": {"median_ms": 1.0}}, False, 0.0))
        writer.start()
        writer.join(0.5)
        assert writer.is_alive()  # waits for it instead of switching the journal mode too
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT name FROM sqlite_master").fetchall() == []
    writer.join(30)
    assert timing_cache.lookup(path, ["k"]) == {"k": {"median_ms": 1.0}}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_noisy_measurements_are_marked_and_measured_again(tmp_path):
    pytest.importorskip("torch")
    from scalelab.analysis.measure import measure_latency
    from scalelab.graph import resolve
    from scalelab.spec import parse_spec

    net = resolve(parse_spec("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {name: a, kind: conv, out: 4}"))
    never_quiet = NoiseLimits(max_other_cpus=-1.0, max_spread=math.inf, backoff_s=())  # every attempt is noisy
    fast = dict(warmup=1, burst=1, min_rounds=2, max_rounds=2, progress=False, cache_path=tmp_path / "c.sqlite")
    with pytest.raises(NoisyMachine, match="other processes kept"):
        measure_latency(net, limits=never_quiet, **fast)
    first = measure_latency(net, limits=never_quiet, allow_noisy=True, **fast)
    assert first.blocks["a"].noisy and first.network.noisy and "NOISY" in first.method
    again = measure_latency(net, limits=NoiseLimits(math.inf, math.inf, ()), **fast)
    assert not again.blocks["a"].cached and not again.blocks["a"].noisy  # the noisy entry was not served


# --------------------------------------------------------------------------------------------------
# Calibration


def test_calibrate_refuses_too_few_networks_before_measuring():
    result = invoke("calibrate", "--networks", "3")
    assert_refused(result, "--networks 3 cannot determine the 19 unknowns", "needs at least 20")


def test_calibrate_refuses_on_a_busy_machine(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "busy.yaml"
    procs = busy(3, 30.0)  # more spinning processes than a small machine has CPUs
    try:
        result = invoke("calibrate", "--networks", "20", "-o", out)
    finally:
        for p in procs:
            p.kill()
    assert_refused(result, "calibrate: the machine is too busy to measure", "CPUs busy (limit 0.5)")
    assert not out.exists()


def test_a_fit_that_does_not_hold_out_is_written_with_a_warning():
    from scalelab.analysis.latency import predict_latency
    from scalelab.analysis.calibrate import _profile
    from scalelab.analysis.latency_fit import COLUMNS
    from scalelab.graph import resolve
    from scalelab.spec import parse_spec

    pytest.importorskip("torch")  # the conditions record torch's version
    unknowns = {c: 1e-9 for c in COLUMNS}
    state = {"unknowns": unknowns, "peak_flops": {"fp32": 1e11}, "fit_errors": [0.0, 0.01, 0.02],
             "held_out_errors": [0.3, 0.54, 0.9], "noise": Noise(0.1, 0.01)}
    profile = _profile(state, "shaky", "cpu", 20, NoiseLimits(), max_held_out_error=0.25)
    warning = profile.calibration["warning"]
    assert warning.startswith("UNRELIABLE PROFILE: leave-one-out median error 54% exceeds the 25% limit")
    net = resolve(parse_spec("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {kind: conv, out: 4}"))
    assert predict_latency(net, profile).method.startswith(f"WARNING, {warning}.")
    quiet = _profile({**state, "held_out_errors": [0.05, 0.08, 0.1]}, "fine", "cpu", 20, NoiseLimits(), 0.25)
    assert "warning" not in quiet.calibration
