"""Calibration: measure this machine (CPU or a CUDA GPU) and write a device profile.

The per-kind figures are fitted on networks timed whole, not on single layers timed alone (a layer in
a hot loop of its own runs from warm caches and beats the same layer inside a network), and on two
sets of them: REAL-SHAPED networks (``scalelab.devices.real_shaped``: zoo networks cut to reduced
depth at resolutions of their own, so that the fit sees the channel counts, spatial sizes and block
kinds real networks have) and SYNTHETIC ones (``scalelab.devices.synthetic``: a fixed, seeded set of
small random networks, for breadth). Fitted on the synthetic set alone, the profile predicted real
networks slow by a median of about 20% (cut-down ones by up to 60%): the synthetic layers are narrower
(at most 320 channels) and their maps smaller than real ones, and the fit carried what they cost
into figures real layers do not pay. The model and the
fit are in ``scalelab.analysis.latency_fit``; what is measured here (torch imported here only):
  * floors for the fit: the fp32 peak (square matrix multiplies, 2 n^3 FLOPs; bf16/fp16 too where
    supported), the bandwidth of batchnorm and ReLU over in-cache activation sizes (bytes read plus
    written over the time beyond their fixed cost), and each layer kind's fixed cost on tiny inputs
    (nothing but the module call, dispatch and thread fork/join left);
  * each calibration network whole (built with ``scalelab.build``, eval, inference_mode, warm-up, short
    interleaved rounds until each network's lowest round median has settled,
    ``scalelab.analysis.measure.time_interleaved``), and in the same interleaved set, to validate, real
    networks of the zoo (``VALIDATION``, never fitted on: no real-shaped network is cut from them),
    predicted by the fitted profile. One set, so that the machine's drift between two sets of timings
    is not read as the model's error; bursts of ``BURST`` runs, so that each kept figure is a warm run,
    as a user's measurement is.
The profile reports the fit's own error, its leave-one-out error (each network predicted by a fit on
the others) and the error on the held-out zoo networks: the last is what predictions on the profile
carry. Competing load makes it wait and at last refuse; an idle machine's jitter only makes it
measure more (``scalelab.analysis.noise``).
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Callable, Optional

from scalelab.analysis.latency_fit import (
    COLUMNS, RATE_CLASSES, Row, features, fit, predict_seconds,
)
from scalelab.analysis.calibrate_profile import build_profile as _profile
from scalelab.analysis.measure import drift, time_callable, time_interleaved, unsettled
from scalelab.analysis import noise as machine_load  # its load probe looked up at each call: tests stand in a busy one
from scalelab.analysis.noise import SETTLE, Noise, NoiseLimits, until_quiet
from scalelab.blocks.layers import LatencyClass
from scalelab.devices.profile import DeviceProfile
from scalelab.devices.real_shaped import HELD_OUT, SOURCES, real_shaped_specs
from scalelab.devices.synthetic import COUNT, synthetic_specs
from scalelab.errors import ScalelabError
from scalelab.graph import resolve

if TYPE_CHECKING:
    import torch

    from scalelab.spec.model import Spec

MATMUL_SIZE = {"cpu": 1024, "cuda": 4096}  # large enough to reach the peak, small enough to take seconds
#: (channels, size): activation sizes for the bandwidth floor (in cache, as a network's are)
GRID = [(32, 112), (64, 56), (128, 28), (256, 14), (512, 7), (24, 112), (56, 56), (104, 28), (200, 14), (392, 7)]
#: (channels, size): inputs so small that a layer's time is its fixed cost
TINY = [(8, 1), (16, 2), (32, 4)]
TIME_BUDGET_S = 0.1  # per floor measurement: many short runs give the fastest a chance to be undisturbed
SLOW_MATMUL_S = 0.05  # a full-size multiply slower than this is emulated (bf16 without hardware support)
NETWORK_BUDGET_S = 0.8  # per calibration network (synthetic and real-shaped, timed in one interleaved set)
#: zoo networks the fitted profile is validated on (timed whole, never fitted on): dense, grouped, depthwise,
#: squeeze-excite and multi-branch, all quick on a CPU
VALIDATION = HELD_OUT
#: the real-shaped networks fitted on (those cut from a validation network are left out)
REAL_SHAPED = SOURCES
#: runs of a network per round: the first finds the caches holding the other networks' weights and activations
#: (cold: 10-30% slower on a 2-core VM), the median of five is a warm run, as a network timed in a loop of its own
#: (``measure_latency``, what a user measures) always is
BURST = 5
#: a profile whose leave-one-out median error exceeds this is written with a warning (README,
#: "Measuring on a busy machine"); quiet machines fit the synthetic set to well under it
MAX_HELD_OUT_ERROR = 0.25


def _time(fn: Callable[[], object], device: str) -> float:
    """Seconds of the fastest of repeated runs of ``fn()``: other processes only ever slow a run
    down, so the fastest is the closest to what the machine does undisturbed."""
    # no early stop (stable=0): many short runs within the budget give the fastest a chance to be undisturbed
    return time_callable(fn, device, warmup=2, min_repeats=10, max_repeats=300, stable=0.0,
                         budget_s=TIME_BUDGET_S).min_ms / 1e3
def _matmul(state: dict) -> None:
    import torch

    device, peaks = state["device"], {}
    n = MATMUL_SIZE["cuda" if device.startswith("cuda") else "cpu"]
    for dtype, tdtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        try:
            peaks[dtype] = matmul_peak(n, device, tdtype)
        except RuntimeError:
            continue  # this dtype has no matmul kernel on this device
    state["peak_flops"] = peaks


def matmul_peak(n: int, device: str, tdtype: torch.dtype) -> float:
    """FLOP/s of the fastest n x n matrix multiply; a dtype whose multiply would take longer than
    SLOW_MATMUL_S at n (emulated: seconds per run at n = 1024 on a CPU without bf16 units) is timed at
    n / 4, where it is as slow per FLOP, judged by a probe at n / 4 (64 times fewer FLOPs)."""
    import torch

    small = [torch.randn(n // 4, n // 4, device=device, dtype=tdtype) for _ in range(2)]
    probe = time_callable(lambda: small[0] @ small[1], device, warmup=1, min_repeats=2, max_repeats=2).min_ms / 1e3
    if probe * 64 > SLOW_MATMUL_S:
        return 2 * (n // 4) ** 3 / _time(lambda: small[0] @ small[1], device)
    a, b = (torch.randn(n, n, device=device, dtype=tdtype) for _ in range(2))
    return 2 * n**3 / _time(lambda: a @ b, device)


def _class_modules(channels: int) -> dict[LatencyClass, list]:
    """One module per variant of each latency class but linear (timed on vectors), for an input of
    ``channels`` channels."""
    import torch.nn as nn

    c = channels
    return {
        LatencyClass.DENSE_CONV: [nn.Conv2d(c, c, 3, padding=1, bias=False)],
        LatencyClass.POINTWISE_CONV: [nn.Conv2d(c, c, 1, bias=False)],
        LatencyClass.GROUPED_CONV: [nn.Conv2d(c, c, 3, padding=1, groups=max(1, c // 4), bias=False)],
        LatencyClass.DEPTHWISE_CONV: [nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False) for k in (3, 5)],
        LatencyClass.STRIDED_DEPTHWISE_CONV: [nn.Conv2d(c, c, k, 2, padding=k // 2, groups=c, bias=False)
                                              for k in (3, 5)],
        LatencyClass.POOL: [nn.MaxPool2d(3, 2, 1)],
        LatencyClass.NORM: [nn.BatchNorm2d(c).eval()],
        LatencyClass.ELEMENTWISE: [nn.ReLU(), nn.Hardtanh(0, 6), nn.SiLU(), nn.Sigmoid(), nn.AdaptiveAvgPool2d(1)],
    }


def _overheads(state: dict) -> None:
    """Per latency class, the median over tiny inputs and the class's variants of the fastest run."""
    import torch

    device = state["device"]
    found: dict[LatencyClass, list[float]] = {}
    for channels, size in TINY:
        x = torch.randn(1, channels, size, size, device=device)
        for kind, modules in _class_modules(channels).items():
            for module in modules:
                module = module.to(device)
                found.setdefault(kind, []).append(_time(lambda: module(x), device))
        fc = torch.nn.Linear(channels, channels).to(device)
        v = torch.randn(1, channels, device=device)
        found.setdefault(LatencyClass.LINEAR, []).append(_time(lambda: fc(v), device))
    state["overhead_us"] = {kind: round(1e6 * statistics.median(times), 2) for kind, times in found.items()}


def _bandwidth(state: dict) -> None:
    import torch

    device, overhead, rates = state["device"], state["overhead_us"], []
    for channels, size in GRID:
        x = torch.randn(1, channels, size, size, device=device)
        for kind, module in ((LatencyClass.NORM, torch.nn.BatchNorm2d(channels).eval().to(device)),
                             (LatencyClass.ELEMENTWISE, torch.nn.ReLU())):
            busy = _time(lambda: module(x), device) - overhead[kind] / 1e6
            if busy > 0:
                rates.append(2 * x.nbytes / busy)
    state["memory_bandwidth"] = statistics.median(rates)


def _timed_whole(networks: list, device: str, limits: NoiseLimits, allow_noisy: bool, budget_s: float
                 ) -> tuple[list[float], Noise, int]:
    """Seconds of each resolved network timed whole, interleaved (``time_interleaved``: each one's lowest
    round median, short rounds until settled), again after a back-off while other processes compete."""
    import torch

    from scalelab.build import build_module  # torch: only when a module is built

    fns = {}
    for i, network in enumerate(networks):
        module = build_module(network).eval().to(device)
        x = torch.randn(1, *network.input_shape, device=device)
        fns[i] = (lambda m, v: lambda: m(v))(module, x)

    def attempt() -> tuple[dict, Noise]:
        with machine_load.LoadWindow() as window:
            timings = time_interleaved(fns, device, warmup=3, burst=BURST, min_rounds=6, max_rounds=40,
                                       stable=SETTLE, budget_s=budget_s)
        return timings, Noise(window.other_cpus, unsettled(timings.values()), drift(timings.values()))

    timings, noise = until_quiet(attempt, "calibrate", limits, allow_noisy)
    return [timings[i].median_ms / 1e3 for i in fns], noise, timings[0].rounds  # interleaved: every one has as many rounds


def _networks(state: dict, specs: list[Spec], limits: NoiseLimits, allow_noisy: bool,
              validation: tuple[str, ...] = ()) -> None:
    """Time the calibration networks and the zoo networks of ``validation`` whole, in one interleaved set
    (a machine whose speed drifts between two sets of timings would show its drift as the model's error);
    keep each calibration network's features and name, each validation network's time, and what the
    measurement saw."""
    from scalelab.spec.load import load_spec

    networks = [resolve(spec) for spec in specs]
    held_out = [resolve(load_spec(name)) for name in validation]
    seconds, noise, rounds = _timed_whole(networks + held_out, state["device"], limits, allow_noisy, NETWORK_BUDGET_S)
    state["rows"] = [(*features(network), t) for network, t in zip(networks, seconds)]
    state["row_names"] = [spec.name for spec in specs]
    state["validation_networks"] = dict(zip(validation, held_out))
    state["validation_ms"] = {name: 1e3 * t for name, t in zip(validation, seconds[len(networks):])}
    state["noise"], state["rounds"] = noise, rounds


def calibration_specs(count: int, validation: tuple[str, ...]) -> list[Spec]:
    """What calibration fits on: the real-shaped networks (none cut from a network in ``validation``), then
    the first ``count`` synthetic ones."""
    return real_shaped_specs(held_out=validation, sources=REAL_SHAPED) + synthetic_specs(count)


def required_networks(specs: list) -> int:
    """Networks needed to fit the unknowns these networks exercise, with one to spare (so that each
    leave-one-out fit is still determined)."""
    used = set()
    for spec in specs:
        found, _ = features(resolve(spec))
        used |= {column for column in COLUMNS if found[column]}
    return len(used) + 1


def floors_of(state: dict) -> dict:
    """Each unknown's floor, from the measured floors: the peak, the bandwidth, each kind's fixed cost."""
    peak = state["peak_flops"]["fp32"]
    floors: dict[tuple[str, str], float] = {("inv_bandwidth", ""): 1 / state["memory_bandwidth"]}
    floors.update({("inv_rate", kind): 1 / peak for kind in RATE_CLASSES})
    floors.update({("overhead", kind): us / 1e6 for kind, us in state["overhead_us"].items()})
    return floors


def _fit(state: dict) -> None:
    """Fit the unknowns above their floors; the fit's error and its leave-one-out error."""
    peak, rows, floors = state["peak_flops"]["fp32"], state["rows"], floors_of(state)
    unknowns = fit(rows, floors, peak)

    def error(row: Row, fitted: dict) -> float:
        found, at_peak, measured = row
        return abs(predict_seconds(found, at_peak, fitted, peak) / measured - 1)

    state["unknowns"] = unknowns
    state["fit_errors"] = [error(row, unknowns) for row in rows]
    state["held_out_errors"] = [error(row, fit(rows[:i] + rows[i + 1:], floors, peak)) for i, row in enumerate(rows)] \
        if len(rows) > 2 else []


def _check_quiet(limits: NoiseLimits, allow_noisy: bool) -> None:
    """Before any measuring: wait (with back-off) for other processes to leave the CPUs alone."""
    until_quiet(lambda: (None, Noise(machine_load.idle_load(0.5), 0.0)), "calibrate", limits, allow_noisy)


def _measure(state: dict, specs: list[Spec], limits: NoiseLimits, allow_noisy: bool, progress: bool,
             validation: tuple[str, ...], max_held_out_error: float) -> None:
    """The floors, the calibration networks, the fit, then the validation, with a progress bar on stderr."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    steps = [("matrix multiply", _matmul), ("fixed cost per layer kind", _overheads), ("memory bandwidth", _bandwidth),
             (f"{len(specs)} calibration and {len(validation)} validation networks, interleaved",
              lambda st: _networks(st, specs, limits, allow_noisy, validation)),
             ("fit", _fit)]
    if validation:
        steps.append((f"validation on {len(validation)} zoo networks", lambda st: _validate(st, max_held_out_error)))
    with Progress(TextColumn("calibrating: {task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), disable=not progress, transient=True) as bar, torch.inference_mode():
        task = bar.add_task("", total=len(steps))
        for label, step in steps:
            bar.update(task, description=label)
            step(state)
            bar.advance(task)


def _validate(state: dict, max_held_out_error: float) -> None:
    """Predict the validation networks (timed with the calibration networks, never fitted on) with the
    fitted profile: per network the signed error (predicted / measured - 1)."""
    from scalelab.analysis.latency import predict_latency

    fitted = _profile(state, "validating", state["device"], state.get("synthetic", 0), NoiseLimits(), max_held_out_error)
    state["validation"] = {name: predict_latency(network, fitted, "fp32", 1).total_ms / state["validation_ms"][name] - 1
                           for name, network in state["validation_networks"].items()}


def calibrate(device: str = "cpu", name: str = "calibrated", progress: bool = True,
              networks: Optional[int] = None, limits: Optional[NoiseLimits] = None, allow_noisy: bool = False,
              max_held_out_error: float = MAX_HELD_OUT_ERROR, validation: tuple[str, ...] = VALIDATION,
              keep: Optional[dict] = None) -> DeviceProfile:
    """Measure ``device`` and return a profile whose figures all come from the measurement, fitted on the
    real-shaped networks and the first ``networks`` synthetic ones (default: the whole set; fewer fit less
    well, for quick checks) and validated on the zoo networks ``validation`` (none: not validated; no
    real-shaped network cut from one of them is fitted on). ``keep``, a dict, receives what was measured.

    Refused (``ScalelabError``) before any measuring when too few networks are asked for the unknowns
    they exercise; refused (``NoisyMachine``) when other processes keep the machine too busy to measure,
    unless ``allow_noisy`` (the profile is then marked noisy); an idle machine's jitter only makes it
    measure more. A fit whose leave-one-out or validation median error exceeds ``max_held_out_error``
    is written with a warning that every prediction from it repeats."""
    import torch

    limits = limits or NoiseLimits()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScalelabError(f"calibrate on {device}: CUDA is not available here; use cpu")
    count = COUNT if networks is None else networks
    if count < 1:
        raise ScalelabError(f"calibrate: --networks must be at least 1, got {count}")
    specs = calibration_specs(count, validation)
    real = len(specs) - count
    need = required_networks(calibration_specs(COUNT, validation))
    if len(specs) < need:
        raise ScalelabError(f"calibrate: --networks {count} cannot determine the {need - 1} unknowns of the latency "
                            f"model: fitting them with one network held out needs at least {need} (the set has {COUNT} "
                            f"synthetic networks besides {real} real-shaped ones)")
    if not device.startswith("cuda"):
        _check_quiet(limits, allow_noisy)  # other processes share the CPU, not a GPU
    state: dict = {"device": device, "synthetic": count, "real_shaped": real,
                   "real_shaped_from": sorted({s.zoo for s in REAL_SHAPED if s.zoo not in validation})}
    _measure(state, specs, limits, allow_noisy, progress, validation, max_held_out_error)
    if keep is not None:
        keep.update(state)  # what was measured and fitted, for a caller that compares fits on the same timings
    return _profile(state, name, device, count, limits, max_held_out_error)
