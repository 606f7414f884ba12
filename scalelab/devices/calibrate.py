"""Calibration: measure this machine (CPU or a CUDA GPU) and write a device profile.

Every figure is fitted on synthetic layer shapes (a grid of channel counts and map sizes chosen
here, not taken from any network of the zoo), so that the zoo can then judge the predictor fairly.
What is measured (torch imported here only):
  * fixed cost per layer kind: each kind (dense, 1x1, grouped, depthwise and strided depthwise
    convolutions, linear, max pool, batchnorm, elementwise activations and global pooling) on tiny
    inputs, where nothing but the module call, dispatch, primitive set-up and thread-pool fork and
    join remains; the median over a few tiny shapes. On a CPU a depthwise convolution costs several
    times what a ReLU does even on a 1x1 map, so one overhead for every kernel under-predicts networks
    made of many small layers (inverted residuals);
  * compute: square fp32 (and bf16/fp16 where supported) matrix multiplies, 2 n^3 FLOPs each;
  * bandwidth: batchnorm and ReLU over a grid of activation sizes, bytes read plus written over
    (time - their fixed cost);
  * per-kind efficiency: each kind over the grid (depthwise at stride 1 and 2, kernels 3 and 5);
    a layer's rate is FLOPs / (time - its kind's fixed cost); a layer no slower than its bytes at the
    bandwidth does not inform compute efficiency. Each kind's efficiency is its median rate over the
    peak; for dense and 1x1 convolutions, whose rate grows with the output channels n (a matrix
    multiply with few rows fills few vector registers), rate = top x n / (n + half) is fitted instead.
    The peak is the fastest rate seen (the matrix multiply, or a convolution where the convolution
    library beats it), so efficiencies need no clamping.
"""

from __future__ import annotations

import statistics
from typing import Callable, Optional

from scalelab.devices.profile import DeviceProfile

MATMUL_SIZE = {"cpu": 1024, "cuda": 4096}  # large enough to reach the peak, small enough to take seconds
#: (channels, size): a synthetic grid, channels doubling as the map halves (a CNN's usual trade); powers
#: of two, and multiples of 8 that are not of 16 (what rounding scaled widths to 8 gives), which
#: vectorised kernels handle less well
GRID = [(32, 112), (64, 56), (128, 28), (256, 14), (512, 7), (24, 112), (56, 56), (104, 28), (200, 14), (392, 7)]
#: (channels, size): inputs so small that a layer's time is its fixed cost
TINY = [(8, 1), (16, 2), (32, 4)]
TIME_BUDGET_S = 0.2  # per shape: many short runs give the fastest a chance to be undisturbed


def conv_shapes(grid: list[tuple[int, int]]) -> dict[str, list[tuple[int, int, int, int, int, int]]]:
    """(in, out, kernel, stride, groups, size) per convolution kind, derived from the grid."""
    return {
        "dense_conv": [(c, c, 3, 1, 1, s) for c, s in grid] + [(3, c, 3, 2, 1, 2 * s) for c, s in grid if s >= 112],
        "pointwise_conv": [(c, 4 * c, 1, 1, 1, s) for c, s in grid] + [(4 * c, c, 1, 1, 1, s) for c, s in grid],
        "grouped_conv": [(c, c, 3, 1, max(1, c // 4), s) for c, s in grid],
        "depthwise_conv": [(3 * c, 3 * c, k, 1, 3 * c, s) for c, s in grid for k in (3, 5)],
        "strided_depthwise_conv": [(3 * c, 3 * c, k, 2, 3 * c, s) for c, s in grid for k in (3, 5)],
    }


def linear_shapes(grid: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(4 * c, 2 * c) for c, s in grid if s <= 28]


def _steps(device: str) -> list[tuple[str, Callable]]:
    return [("matrix multiply", _matmul), ("fixed cost per layer kind", _overheads), ("memory bandwidth", _bandwidth),
            ("per-kind efficiency", _efficiency)]


def _time(fn, device: str) -> float:
    """Seconds of the fastest of repeated runs of ``fn()``: other processes only ever slow a run
    down, so the fastest is the closest to what the machine does undisturbed."""
    from scalelab.analysis.measure import time_callable

    # no early stop (stable=0): many short runs within the budget give the fastest a chance to be undisturbed
    return time_callable(fn, device, warmup=2, min_repeats=10, max_repeats=300, stable=0.0,
                         budget_s=TIME_BUDGET_S).min_ms / 1e3


def _matmul(state: dict) -> None:
    import torch

    device, peaks = state["device"], {}
    n = MATMUL_SIZE["cuda" if device.startswith("cuda") else "cpu"]
    for dtype, tdtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        try:
            a = torch.randn(n, n, device=device, dtype=tdtype)
            b = torch.randn(n, n, device=device, dtype=tdtype)
            peaks[dtype] = 2 * n**3 / _time(lambda: a @ b, device)
        except RuntimeError:
            continue  # this dtype has no matmul kernel on this device
    state["peak_flops"] = peaks


def _kind_modules(channels: int) -> dict[str, list]:
    """One module per variant of each layer kind, for an input of ``channels`` channels."""
    import torch.nn as nn

    c = channels
    return {
        "dense_conv": [nn.Conv2d(c, c, 3, padding=1, bias=False)],
        "pointwise_conv": [nn.Conv2d(c, c, 1, bias=False)],
        "grouped_conv": [nn.Conv2d(c, c, 3, padding=1, groups=max(1, c // 4), bias=False)],
        "depthwise_conv": [nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False) for k in (3, 5)],
        "strided_depthwise_conv": [nn.Conv2d(c, c, k, 2, padding=k // 2, groups=c, bias=False) for k in (3, 5)],
        "pool": [nn.MaxPool2d(3, 2, 1)],
        "norm": [nn.BatchNorm2d(c).eval()],
        "elementwise": [nn.ReLU(), nn.Hardtanh(0, 6), nn.SiLU(), nn.Sigmoid(), nn.AdaptiveAvgPool2d(1)],
    }


def _overheads(state: dict) -> None:
    """Per kind, the median over tiny inputs and the kind's variants of the fastest run."""
    import torch

    device, found = state["device"], {}
    for channels, size in TINY:
        x = torch.randn(1, channels, size, size, device=device)
        for kind, modules in _kind_modules(channels).items():
            for module in modules:
                module = module.to(device)
                found.setdefault(kind, []).append(_time(lambda: module(x), device))
        fc = torch.nn.Linear(channels, channels).to(device)
        v = torch.randn(1, channels, device=device)
        found.setdefault("linear", []).append(_time(lambda: fc(v), device))
    state["overhead_us"] = {kind: round(1e6 * statistics.median(times), 2) for kind, times in found.items()}


def _bandwidth(state: dict) -> None:
    import torch

    device, overhead, rates = state["device"], state["overhead_us"], []
    for channels, size in GRID:
        x = torch.randn(1, channels, size, size, device=device)
        for kind, module in (("norm", torch.nn.BatchNorm2d(channels).eval().to(device)), ("elementwise", torch.nn.ReLU())):
            busy = _time(lambda: module(x), device) - overhead[kind] / 1e6
            if busy > 0:
                rates.append(2 * x.nbytes / busy)
    state["memory_bandwidth"] = statistics.median(rates)


def _efficiency(state: dict) -> None:
    import torch

    device, bandwidth = state["device"], state["memory_bandwidth"]
    rates: dict[str, list] = {}  # kind -> [(rate, output channels)]

    def record(kind: str, flops: float, moved: float, seconds: float, channels: int) -> None:
        busy = seconds - state["overhead_us"][kind] / 1e6
        if busy > moved / bandwidth:  # else the memory time explains it: says nothing about compute
            rates.setdefault(kind, []).append((flops / busy, channels))

    for kind, shapes in conv_shapes(GRID).items():
        for cin, cout, k, stride, groups, size in shapes:
            conv = torch.nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False).eval().to(device)
            x = torch.randn(1, cin, size, size, device=device)
            out = (size + 2 * (k // 2) - k) // stride + 1
            flops = 2 * out * out * cout * (cin // groups) * k * k
            record(kind, flops, 4 * (conv.weight.numel() + x.numel() + cout * out * out), _time(lambda: conv(x), device), cout)
    for fin, fout in linear_shapes(GRID):
        fc = torch.nn.Linear(fin, fout).eval().to(device)
        x = torch.randn(1, fin, device=device)
        record("linear", 2 * fin * fout, 4 * (fin * fout + fin + fout), _time(lambda: fc(x), device), fout)
    for channels, size in GRID:
        for k, stride, pad in ((3, 2, 1), (2, 2, 0)):
            pool = torch.nn.MaxPool2d(k, stride, pad)
            x = torch.randn(1, channels, size, size, device=device)
            out = pool(x)
            record("pool", (k * k - 1) * out.numel(), 4 * (x.numel() + out.numel()), _time(lambda: pool(x), device), channels)
    fitted = {kind: _fit_width(found) if kind in THIN_KINDS else (statistics.median(r for r, _ in found), 0.0)
              for kind, found in rates.items()}
    # the peak is the fastest compute seen: a convolution library may beat the plain matrix multiply
    best = max([r for found in rates.values() for r, _ in found] + [rate for rate, _ in fitted.values()], default=0.0)
    state["peak_flops"]["fp32"] = peak = max(state["peak_flops"]["fp32"], best)
    state["efficiency"] = {kind: max(1e-4, float(f"{rate / peak:.3g}")) for kind, (rate, _) in fitted.items()}
    state["half_efficiency_channels"] = {kind: half for kind, (_, half) in fitted.items() if half > 0}


#: kinds whose rate grows with the output channels (a matrix multiply with that many rows)
THIN_KINDS = ("dense_conv", "pointwise_conv")
HALF_CANDIDATES = [0.0] + [float(round(2 ** (k / 2))) for k in range(2, 23)]  # 2 .. 2048 in half-octaves


def _fit_width(found: list[tuple[float, int]]) -> tuple[float, float]:
    """Least squares in log space of rate = top * n / (n + half) over (rate, n) pairs: the half that
    fits best among half-octave candidates, and its top rate (geometric mean)."""
    import math

    best = None
    for half in HALF_CANDIDATES:
        logs = [math.log(r * (n + half) / n) for r, n in found]
        top = statistics.fmean(logs)
        loss = sum((v - top) ** 2 for v in logs)
        if best is None or loss < best[0] - 1e-12:
            best = (loss, math.exp(top), half)
    return best[1], best[2]


def calibrate(device: str = "cpu", name: str = "calibrated", progress: bool = True) -> DeviceProfile:
    """Measure ``device`` and return a profile whose figures all come from the measurement."""
    import platform

    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from scalelab.analysis.measure import conditions_for
    from scalelab.errors import ScalelabError

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScalelabError(f"calibrate on {device}: CUDA is not available here; use cpu")
    state: dict = {"device": device}
    steps = _steps(device)
    with Progress(TextColumn("calibrating: {task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), disable=not progress, transient=True) as bar, torch.inference_mode():
        task = bar.add_task("", total=len(steps))
        for label, step in steps:
            bar.update(task, description=label)
            step(state)
            bar.advance(task)
    conditions = conditions_for(device, "fp32", 1, False)
    conditions["host"] = platform.node()
    how = f"measured by `scalelab calibrate` on {conditions['device_name']} ({device}, {conditions['threads']} threads, torch {conditions['torch']})"
    overhead = dict(state["overhead_us"])
    launch = overhead.pop("elementwise")  # the generic figure: any kind without its own
    return DeviceProfile(
        name=name,
        description=f"calibrated: {conditions['device_name']} ({device}, {conditions['threads']} threads)",
        kind="gpu" if device.startswith("cuda") else "cpu",
        peak_flops={k: float(f"{v:.4g}") for k, v in state["peak_flops"].items()},
        memory_bandwidth=float(f"{state['memory_bandwidth']:.4g}"),
        achievable_compute=1.0,
        achievable_bandwidth=1.0,
        launch_overhead_us=launch,
        efficiency=state["efficiency"],
        overhead_us=overhead,
        half_efficiency_channels=state["half_efficiency_channels"],
        sources={"peak_flops": f"{how}: fastest square matrix multiply, fp32 raised to the fastest synthetic "
                               "convolution where that is faster",
                 "memory_bandwidth": f"{how}: batchnorm and ReLU over a synthetic grid of activation sizes, bytes read + "
                                     "written over the time beyond their fixed cost",
                 "launch_overhead_us": f"{how}: elementwise layers (activations, global pooling) on tiny inputs",
                 "overhead_us": f"{how}: each layer kind on tiny inputs (median of the fastest runs)",
                 "efficiency": f"{how}: per kind, median over a synthetic grid of layer shapes of FLOPs / (peak x "
                               "(time - fixed cost)); dense and 1x1 convolutions: the top of a fit of rate = top x n / "
                               "(n + half) over output channels n",
                 "half_efficiency_channels": f"{how}: the half of that fit (least squares on log rates)"},
        calibration=conditions,
    )
