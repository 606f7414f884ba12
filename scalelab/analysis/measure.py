"""Measured latency: each block built alone at its real input shape, and the whole network, timed
with torch on CPU or CUDA. torch is imported inside the functions only.

Method: warm-up runs, then timed runs (CUDA events and synchronisation on GPU, a monotonic clock on
CPU) until the spread settles (inter-quartile range within ``stable`` of the median) or
``max_repeats`` runs; the median is reported with the inter-quartile range. Results are cached in a
JSON file keyed by (layer tree, input shape, device, dtype, batch, threads, channels_last, torch
version), so repeated analyses do not re-measure.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from scalelab.errors import ScalelabError
from scalelab.graph.network import Network

MEASURABLE = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Timing:
    median_ms: float
    q1_ms: float
    q3_ms: float
    repeats: int
    cached: bool = False
    min_ms: float = 0.0  # fastest run: what the machine can do when nothing else competes

    @property
    def spread_ms(self) -> float:
        return self.q3_ms - self.q1_ms


@dataclass(frozen=True)
class Measurement:
    conditions: dict
    blocks: dict[str, Timing] = field(repr=False)
    network: Optional[Timing] = None
    method: str = ""


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scalelab" / "latency.json"


def _load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a missing or damaged cache only means measuring again


def _save_cache(path: Path, data: dict) -> None:
    from scalelab.output import write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=0, sort_keys=True).encode())
    except (OSError, ScalelabError):
        pass  # an unwritable cache is not an error: the figures are still reported


def _key(signature: str, shape, conditions: dict) -> str:
    fixed = {k: v for k, v in conditions.items() if k != "load_average_1min"}  # recorded, not a key
    text = json.dumps([signature, shape, fixed], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def conditions_for(device: str, dtype: str, batch: int, channels_last: bool) -> dict:
    import torch

    return {"device": device, "device_name": device_name(device), "dtype": dtype, "batch": batch,
            "threads": torch.get_num_threads(), "channels_last": channels_last, "torch": str(torch.__version__),
            "mode": "inference_mode, eval", "load_average_1min": round(os.getloadavg()[0], 2)}


def time_callable(fn, device: str, warmup: int = 3, min_repeats: int = 5, max_repeats: int = 50,
                  stable: float = 0.05, budget_s: float = 5.0) -> Timing:
    """Median and quartiles of ``fn()`` in milliseconds, repeating until stable."""
    import time

    import torch

    cuda = device.startswith("cuda")
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    samples: list[float] = []
    start_all = time.perf_counter()
    while len(samples) < max_repeats:
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(begin.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            samples.append(1e3 * (time.perf_counter() - t0))
        if len(samples) >= min_repeats:
            q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
            if q3 - q1 <= stable * median or time.perf_counter() - start_all > budget_s:
                break
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return Timing(median, q1, q3, len(samples), min_ms=min(samples))


def _torch_dtype(dtype: str):
    import torch

    if dtype not in MEASURABLE:
        raise ScalelabError(f"cannot measure in {dtype}: measured latency supports {', '.join(MEASURABLE)}")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


def _prepare(module, shapes, batch: int, device: str, dtype: str, channels_last: bool):
    """Module in eval mode on the device, and random inputs of the block's real shapes."""
    import torch

    tdtype = _torch_dtype(dtype)
    module = module.eval().to(device=device, dtype=tdtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        module = module.to(memory_format=torch.channels_last)

    def make(shape):
        x = torch.randn(batch, *shape, device=device, dtype=tdtype)
        return x.contiguous(memory_format=fmt) if x.ndim == 4 else x

    inputs = [make(s) for s in shapes]
    return module, inputs


def measure_latency(network: Network, device: str = "cpu", dtype: str = "fp32", batch: int = 1, *,
                    blocks: bool = True, whole: bool = True, channels_last: bool = False,
                    warmup: int = 3, min_repeats: int = 5, max_repeats: int = 50, stable: float = 0.05,
                    use_cache: bool = True, cache_path: Optional[Path] = None, progress: bool = True) -> Measurement:
    """Measure each inference block alone at its input shape and/or the whole network."""
    import torch

    from scalelab.build import Net, to_torch

    if batch < 1:
        raise ScalelabError(f"batch must be at least 1, got {batch}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScalelabError(f"--measure on {device}: CUDA is not available here; use cpu")
    _torch_dtype(dtype)
    conditions = conditions_for(device, dtype, batch, channels_last)
    path = cache_path or cache_file()
    cache = _load_cache(path) if use_cache else {}
    inference = network.inference_blocks()
    work = ([(b.name, b) for b in inference] if blocks else []) + ([("(network)", None)] if whole else [])
    results: dict[str, Timing] = {}
    whole_timing = None
    timing_args = dict(warmup=warmup, min_repeats=min_repeats, max_repeats=max_repeats, stable=stable)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("measuring {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    from rich.console import Console

    stderr = Console(stderr=True)  # stdout carries the report
    with Progress(*columns, console=stderr, disable=not progress, transient=True) as bar, torch.inference_mode():
        task = bar.add_task(network.spec.name, total=len(work))
        for label, block in work:
            bar.update(task, description=f"{network.spec.name}: {label}")
            if block is None:
                signature = repr([(b.name, b.inputs, b.layers) for b in inference])
                shapes = [network.input_shape]
            else:
                signature = repr(block.layers)
                shapes = [block.in_shape] if type(block.block).arity == 1 else list(block.in_shape)
            key = _key(signature, shapes, conditions)
            if key in cache:
                timing = Timing(**{**cache[key], "cached": True})
            else:
                module = Net(network) if block is None else to_torch(block.layers)
                module, inputs = _prepare(module, shapes, batch, device, dtype, channels_last)
                arg = inputs[0] if len(inputs) == 1 else inputs
                timing = time_callable(lambda: module(arg), device, **timing_args)  # eval Net frees as it goes
                cache[key] = {k: v for k, v in asdict(timing).items() if k != "cached"}
            if block is None:
                whole_timing = timing
            else:
                results[label] = timing
            bar.advance(task)
    if use_cache:
        _save_cache(path, cache)
    method = (f"measured with torch {conditions['torch']} on {conditions['device_name']} ({device}, "
              f"{conditions['threads']} threads): median of repeated runs after {warmup} warm-up runs, "
              f"spread = inter-quartile range; blocks timed alone at their input shapes")
    return Measurement(conditions, results, whole_timing, method)
