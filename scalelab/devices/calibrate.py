"""Calibration: measure this machine (CPU or a CUDA GPU) and write a device profile.

What is measured (torch imported here only):
  * compute: square fp32 (and bf16/fp16 where supported) matrix multiplies, 2 n^3 FLOPs each; the
    fastest is the profile's peak, so ``achievable_compute`` is 1 and per-kind efficiencies say how
    much of it each layer kind reaches;
  * bandwidth: batchnorm and ReLU over activations of typical sizes (the memory-bound kernels of a
    CNN), bytes read plus written over time;
  * launch overhead: what batchnorm and ReLU on small late-stage maps take beyond their bytes at
    that bandwidth (module call, dispatch, kernel launch, thread-pool fork and join);
  * per-kind efficiency: convolutions, linear layers and max pools at shapes typical of ResNets,
    MobileNets and GoogLeNet; efficiency = FLOPs / (peak * (time - overhead)), the median over
    shapes, capped at 1; a layer that runs no slower than its bytes at the measured bandwidth does
    not inform compute efficiency.
"""

from __future__ import annotations

import statistics
from typing import Callable, Optional

from scalelab.devices.profile import DeviceProfile

MATMUL_SIZE = {"cpu": 1024, "cuda": 4096}  # large enough to reach the peak, small enough to take seconds
# (in, out, kernel, groups, size): shapes typical of ResNet and MobileNet/EfficientNet stages
CONV_SHAPES = {
    "dense_conv": [(64, 64, 3, 1, 56), (128, 128, 3, 1, 28), (256, 256, 3, 1, 14), (512, 512, 3, 1, 7), (3, 32, 3, 1, 112)],
    "pointwise_conv": [(64, 256, 1, 1, 56), (256, 64, 1, 1, 56), (1024, 256, 1, 1, 14), (2048, 512, 1, 1, 7),
                       (96, 24, 1, 1, 56), (144, 24, 1, 1, 56), (192, 32, 1, 1, 28), (384, 64, 1, 1, 14),
                       (480, 80, 1, 1, 14), (960, 160, 1, 1, 7)],
    "depthwise_conv": [(96, 96, 3, 96, 56), (144, 144, 3, 144, 56), (240, 240, 5, 240, 28), (480, 480, 3, 480, 14),
                       (672, 672, 5, 672, 14), (1152, 1152, 5, 1152, 7)],
    "grouped_conv": [(128, 128, 3, 32, 56), (256, 256, 3, 32, 28), (512, 512, 3, 32, 14)],
}
LINEAR_SHAPES = [(2048, 1000), (1280, 1000), (4096, 4096)]
# (channels, size, kernel, stride, padding): max pools of ResNet/VGG/GoogLeNet stems and stages
POOL_SHAPES = [(64, 112, 3, 2, 1), (192, 56, 3, 2, 0), (480, 28, 3, 1, 1), (128, 112, 2, 2, 0), (512, 14, 2, 2, 0)]
ELEMENTWISE_SHAPES = [(64, 112), (256, 56), (144, 56), (512, 28), (1024, 14)]  # (channels, size)
SMALL_MAPS = [(192, 28), (384, 14), (960, 7), (512, 7)]  # (channels, size): where fixed costs dominate


def _steps(device: str) -> list[tuple[str, Callable]]:
    return [("matrix multiply", _matmul), ("memory bandwidth", _bandwidth), ("launch overhead", _overhead),
            ("per-kind efficiency", _efficiency)]


def _time(fn, device: str) -> float:
    """Seconds of the fastest of repeated runs of ``fn()``: other processes only ever slow a run
    down, so the fastest is the closest to what the machine does undisturbed."""
    from scalelab.analysis.measure import time_callable

    # no early stop (stable=0): many short runs within a second give the fastest a chance to be undisturbed
    return time_callable(fn, device, warmup=2, min_repeats=10, max_repeats=200, stable=0.0, budget_s=1.0).min_ms / 1e3


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


def _bandwidth(state: dict) -> None:
    import torch

    device, rates = state["device"], []
    for channels, size in ELEMENTWISE_SHAPES:
        x = torch.randn(1, channels, size, size, device=device)
        bn = torch.nn.BatchNorm2d(channels).eval().to(device)
        relu = torch.nn.ReLU()
        for module in (bn, relu):
            rates.append(2 * x.nbytes / _time(lambda: module(x), device))
    state["memory_bandwidth"] = statistics.median(rates)


def _overhead(state: dict) -> None:
    """The fixed cost of one layer: over batchnorm, ReLU and ReLU6 on the small maps of late stages,
    the median of (time - bytes / bandwidth), never below the time of a one-element module (module
    call, dispatch, kernel launch; on several threads also the fork and join of the thread pool)."""
    import torch

    device, bandwidth = state["device"], state["memory_bandwidth"]
    one = torch.randn(1, 1, 1, 1, device=device)
    floor = _time(lambda: torch.nn.ReLU()(one), device)
    excess = []
    for channels, size in SMALL_MAPS:
        x = torch.randn(1, channels, size, size, device=device)
        for module in (torch.nn.BatchNorm2d(channels).eval().to(device), torch.nn.ReLU(), torch.nn.Hardtanh(0, 6)):
            excess.append(_time(lambda: module(x), device) - 2 * x.nbytes / bandwidth)
    state["launch_overhead_us"] = 1e6 * max(floor, statistics.median(excess))


def _efficiency(state: dict) -> None:
    import torch

    device, peak = state["device"], state["peak_flops"]["fp32"]
    overhead, bandwidth = state["launch_overhead_us"] / 1e6, state["memory_bandwidth"]
    found = {}
    for kind, shapes in CONV_SHAPES.items():
        ratios = []
        for cin, cout, k, groups, size in shapes:
            conv = torch.nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False).eval().to(device)
            x = torch.randn(1, cin, size, size, device=device)
            flops = 2 * size * size * cout * (cin // groups) * k * k
            moved = 4 * (conv.weight.numel() + x.numel() + cout * size * size)
            ratios.append(_ratio(flops, moved, _time(lambda: conv(x), device), peak, bandwidth, overhead))
        found[kind] = _summary(ratios)
    ratios = []
    for fin, fout in LINEAR_SHAPES:
        fc = torch.nn.Linear(fin, fout).eval().to(device)
        x = torch.randn(1, fin, device=device)
        ratios.append(_ratio(2 * fin * fout, 4 * (fin * fout + fin + fout), _time(lambda: fc(x), device), peak, bandwidth, overhead))
    found["linear"] = _summary(ratios)
    ratios = []
    for channels, size, k, stride, pad in POOL_SHAPES:
        pool = torch.nn.MaxPool2d(k, stride, pad)
        x = torch.randn(1, channels, size, size, device=device)
        out = pool(x)
        ratios.append(_ratio((k * k - 1) * out.numel(), 4 * (x.numel() + out.numel()), _time(lambda: pool(x), device),
                             peak, bandwidth, overhead))
    found["pool"] = _summary(ratios)
    state["efficiency"] = {k: v for k, v in found.items() if v is not None}


def _ratio(flops: float, moved: float, seconds: float, peak: float, bandwidth: float, overhead: float) -> Optional[float]:
    busy = max(seconds - overhead, 1e-9)
    if busy <= moved / bandwidth:
        return None  # the memory time explains it: says nothing about compute efficiency
    return min(1.0, flops / (peak * busy))  # the roofline's max() is then the compute time


def _summary(ratios: list) -> Optional[float]:
    known = [r for r in ratios if r is not None]
    return max(1e-4, float(f"{statistics.median(known):.3g}")) if known else None


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
    return DeviceProfile(
        name=name,
        description=f"calibrated: {conditions['device_name']} ({device}, {conditions['threads']} threads)",
        kind="gpu" if device.startswith("cuda") else "cpu",
        peak_flops={k: float(f"{v:.4g}") for k, v in state["peak_flops"].items()},
        memory_bandwidth=float(f"{state['memory_bandwidth']:.4g}"),
        achievable_compute=1.0,
        achievable_bandwidth=1.0,
        launch_overhead_us=round(state["launch_overhead_us"], 2),
        efficiency=state["efficiency"],
        sources={"peak_flops": f"{how}: fastest square matrix multiply",
                 "memory_bandwidth": f"{how}: batchnorm and ReLU over typical activation sizes, bytes read + written",
                 "launch_overhead_us": f"{how}: batchnorm and ReLU on small maps, time beyond their bytes at the bandwidth",
                 "efficiency": f"{how}: median over typical conv and linear shapes of FLOPs / (peak x time)"},
        calibration=conditions,
    )
