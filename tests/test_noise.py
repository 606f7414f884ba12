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
    # competing load: wait, then measure again; a figure that has not settled: measure again at once
    seen, waits = iter([Noise(1.5, 0.01), Noise(0.1, 0.30), Noise(0.1, 0.01)]), []
    result, noise = until_quiet(lambda: ("timings", next(seen)), "measuring x", NoiseLimits(0.5, 0.05, (1.0, 2.0, 4.0)),
                                sleep=waits.append)
    assert result == "timings" and noise == Noise(0.1, 0.01) and waits == [1.0]


def test_until_quiet_refuses_naming_the_load():
    waits = []
    with pytest.raises(NoisyMachine) as refused:
        until_quiet(lambda: (None, Noise(1.87, 0.34)), "calibrate", NoiseLimits(0.5, 0.1, (1.0, 2.0)), sleep=waits.append)
    message = str(refused.value)
    assert waits == [1.0, 2.0]
    assert "calibrate: the machine is too busy to measure" in message
    assert "other processes kept 1.87 CPUs busy (limit 0.5)" in message
    assert "the kept timings did not settle: they still move by 34.0% between halves of the rounds (limit 10%)" in message
    assert "after 3 attempts in " in message and "(3 s of it waiting between attempts)" in message
    assert "--allow-noisy" in message
    kept, noise = until_quiet(lambda: ("last", Noise(1.87, 0.34)), "x", NoiseLimits(0.5, 0.1, ()), allow_noisy=True)
    assert kept == "last" and noise.problems(NoiseLimits(0.5, 0.1)) != []


def test_jitter_alone_is_measured_again_at_once_and_named_as_such():
    waits, told = [], []
    with pytest.raises(NoisyMachine) as refused:
        until_quiet(lambda: (None, Noise(0.02, 0.12)), "measuring x", NoiseLimits(0.5, 0.05, (1.0, 2.0)),
                    sleep=waits.append, on_wait=told.append)
    assert waits == []  # waiting does not calm jitter
    assert told == ["measuring x: the kept timings did not settle: they still move by 12.0% between halves of the rounds "
                    f"(limit 5%); attempt {n} of 3, measuring more" for n in (2, 3)]
    message = str(refused.value)
    assert "measuring x: the timings never settled" in message and "too busy" not in message
    assert "no other process was competing" in message


# --------------------------------------------------------------------------------------------------
# Injected timings: an idle machine that jitters gives a result; competing load gives the refusal


def idle_vm(floor_ms: float = 10.0, seed: int = 7):
    """A stand-in for one timed run on an idle VM: about a third of the runs near the floor, the rest
    5-35% slower (round medians 22-29 ms for a 22 ms network, as measured on such a machine)."""
    import random

    rng = random.Random(seed)

    def run_once(fn, device):
        fast = rng.random() < 0.35
        return floor_ms * (1 + (rng.uniform(0, 0.01) if fast else rng.uniform(0.05, 0.35)))
    return run_once


class Load:
    """A stand-in LoadWindow that sees ``cpus`` CPUs of competing load."""

    def __init__(self, cpus: float):
        self.cpus = cpus

    def __call__(self):
        return self

    def __enter__(self):
        self.other_cpus = self.cpus
        return self

    def __exit__(self, *exc):
        return None


def test_idle_jitter_is_measured_until_the_kept_figure_settles(monkeypatch):
    pytest.importorskip("torch")
    import statistics

    from scalelab.analysis import measure

    monkeypatch.setattr(measure, "_run_once", idle_vm(10.0))
    timings = measure.time_interleaved({"a": lambda: None, "b": lambda: None}, "cpu", warmup=0, burst=3,
                                       min_rounds=6, max_rounds=60, stable=0.02, budget_s=1e9)
    for t in timings.values():
        assert 10.0 <= t.median_ms <= 10.0 * 1.02  # the kept figure: within the tolerance of the floor
        assert t.unsettled <= 0.02 and t.rounds >= 6 and t.rounds == t.repeats // 3
        assert t.drift > 0.05  # the rounds themselves disagree, which is recorded, not refused
    assert measure.unsettled(timings.values()) == pytest.approx(
        statistics.fmean(t.unsettled for t in timings.values()), rel=0.05)  # equal figures weigh alike


def test_split_half_by_hand():
    from scalelab.analysis.measure import split_half

    assert split_half([10.0, 12.0, 10.4, 11.0]) == pytest.approx(0.1)  # rounds 1, 3: lowest 10.0; rounds 2, 4: 11.0
    assert split_half([10.0]) == 1.0  # one round cannot tell


def test_an_idle_jittering_machine_measures_without_allow_noisy(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from scalelab.analysis import measure, noise
    from scalelab.graph import resolve
    from scalelab.spec import parse_spec

    net = resolve(parse_spec("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {name: a, kind: conv, out: 4}"))
    monkeypatch.setattr(measure, "_run_once", idle_vm(2.0))
    monkeypatch.setattr(noise, "LoadWindow", Load(0.01))
    m = measure.measure_latency(net, progress=False, cache_path=tmp_path / "c.sqlite")  # default limits
    assert not m.network.noisy and "NOISY" not in m.method
    assert 2.0 <= m.network.median_ms <= 2.0 * 1.05 and m.network.unsettled <= noise.MAX_SPREAD


def test_competing_load_is_waited_for_then_refused(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from scalelab.analysis import measure, noise
    from scalelab.graph import resolve
    from scalelab.spec import parse_spec

    net = resolve(parse_spec("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {name: a, kind: conv, out: 4}"))
    waits = []
    monkeypatch.setattr(measure, "_run_once", idle_vm(2.0))
    monkeypatch.setattr(noise, "LoadWindow", Load(1.5))
    monkeypatch.setattr(noise, "_sleep", waits.append)
    with pytest.raises(NoisyMachine, match="too busy to measure: other processes kept 1.50 CPUs busy"):
        measure.measure_latency(net, progress=False, cache_path=tmp_path / "c.sqlite")
    assert waits == list(noise.BACKOFF_S)


def test_calibration_networks_under_jitter_and_under_load(monkeypatch):
    pytest.importorskip("torch")
    from scalelab.analysis import measure, noise
    from scalelab.analysis.calibrate import _networks
    from scalelab.devices.synthetic import synthetic_specs

    monkeypatch.setattr(measure, "_run_once", idle_vm(4.0))
    monkeypatch.setattr(noise, "LoadWindow", Load(0.02))
    state: dict = {"device": "cpu"}
    _networks(state, synthetic_specs(3), NoiseLimits(), allow_noisy=False)
    assert [round(t * 1e3, 1) for *_, t in state["rows"]] == [4.0, 4.0, 4.0]  # the floor, to 0.1 ms
    assert not state["noise"].problems(NoiseLimits()) and state["rounds"] >= 6
    monkeypatch.setattr(noise, "LoadWindow", Load(1.2))
    monkeypatch.setattr(noise, "_sleep", lambda s: None)
    with pytest.raises(NoisyMachine, match="too busy to measure"):
        _networks({"device": "cpu"}, synthetic_specs(3), NoiseLimits(), allow_noisy=False)


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
    from scalelab.analysis.measure import Rounds, measure_latency
    from scalelab.graph import resolve
    from scalelab.spec import parse_spec

    net = resolve(parse_spec("name: t\ninput: {channels: 3, resolution: 8}\nblocks:\n  - {name: a, kind: conv, out: 4}"))
    never_quiet = NoiseLimits(max_other_cpus=-1.0, max_spread=math.inf, backoff_s=())  # every attempt is noisy
    fast = dict(rounds=Rounds(warmup=1, burst=1, min_rounds=2, max_rounds=2), progress=False,
                cache_path=tmp_path / "c.sqlite")
    with pytest.raises(NoisyMachine, match="other processes kept"):
        measure_latency(net, limits=never_quiet, **fast)
    first = measure_latency(net, limits=never_quiet, allow_noisy=True, **fast)
    assert first.blocks["a"].noisy and first.network.noisy and "NOISY" in first.method
    again = measure_latency(net, limits=NoiseLimits(math.inf, math.inf, ()), **fast)
    assert not again.blocks["a"].cached and not again.blocks["a"].noisy  # the noisy entry was not served


# --------------------------------------------------------------------------------------------------
# Calibration


def test_calibrate_refuses_too_few_networks_before_measuring(monkeypatch):
    from scalelab.analysis import calibrate as cal

    # with the real-shaped networks the synthetic ones are never too few: without them, 3 are
    monkeypatch.setattr(cal, "REAL_SHAPED", ())
    result = invoke("calibrate", "--networks", "3")
    assert_refused(result, "--networks 3 cannot determine the 19 unknowns", "needs at least 20",
                   "the set has 36 synthetic networks besides 0 real-shaped ones")


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


def test_the_profile_records_the_stability_of_what_it_kept_and_the_error_on_real_networks():
    pytest.importorskip("torch")  # the conditions record torch's version
    from scalelab.analysis.calibrate import _profile
    from scalelab.analysis.latency_fit import COLUMNS

    state = {"unknowns": {c: 1e-9 for c in COLUMNS}, "peak_flops": {"fp32": 1e11}, "fit_errors": [0.02, 0.04, 0.06],
             "held_out_errors": [0.05, 0.08, 0.1], "noise": Noise(0.03, 0.012, 0.21), "rounds": 14,
             "validation": {"resnet18": 0.08, "mobilenet_v2": -0.12, "googlenet": 0.3}}
    profile = _profile(state, "idle", "cpu", 20, NoiseLimits(), 0.25)
    c = profile.calibration
    assert "warning" not in c  # jittering rounds (21-25%) on an idle machine do not make a profile unreliable
    assert c["competing_load_cpus"] == 0.03 and c["kept_figure_unsettled"] == 0.012 and c["round_disagreement"] == 0.21
    assert c["timing_rounds"] == 14 and c["settle_tolerance"] == 0.02
    assert c["validation_median_error"] == 0.12 and c["validation_errors"]["mobilenet_v2"] == -0.12
    small = profile.errors["host_bound"]  # what predictions at batch 1 carry: the error on the zoo networks
    assert small.median == 0.12 and small.stated == 0.15 and small.networks == 3
    off = _profile({**state, "validation": {"resnet18": 0.4, "googlenet": 0.3}}, "off", "cpu", 20, NoiseLimits(), 0.25)
    assert "median error on the held-out zoo networks 35% exceeds the 25% limit" in off.calibration["warning"]

