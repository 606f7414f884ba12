"""Measured latency: each block built alone at its real input shape, and the whole network, timed
with torch on CPU or CUDA. torch is imported inside the functions only.

Method (robust to a busy machine): warm-up runs, then rounds in which every block to be timed runs a
short burst in turn (interleaved, so that a burst of competing work hits several blocks a little
rather than one block a lot). A block's figure is the lowest of its round medians: one slow run
cannot move a median, and competing work only ever raises a round's. Rounds go on until the runs'
inter-quartile range is within ``stable`` of that figure or the time budget is spent. The competing
load and the spread are recorded (``scalelab.analysis.noise``); a noisy measurement is repeated
after a back-off and refused if it stays noisy, unless the caller accepts it marked noisy. Results
are cached (``scalelab.analysis.timing_cache``) keyed by (layer tree, input shape, device, dtype,
batch, threads, channels_last, torch version).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from collections.abc import Hashable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager, Optional, TypeVar

from scalelab import progress
from scalelab.analysis import timing_cache
from scalelab.analysis.noise import LoadWindow, Noise, NoiseLimits, until_quiet
from scalelab.blocks.layers import Shape
from scalelab.errors import ScalelabError
from scalelab.graph.network import Network, ResolvedBlock

if TYPE_CHECKING:
    import torch
    from torch import nn

#: what names a callable timed in turns: a block's label, or a calibration network's index
Label = TypeVar("Label", bound=Hashable)

MEASURABLE = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Timing:
    median_ms: float  # the kept figure: the lowest round median (a plain median for a single round)
    q1_ms: float
    q3_ms: float
    repeats: int
    cached: bool = False
    min_ms: float = 0.0  # fastest run: what the machine can do when nothing else competes
    other_cpus: float = 0.0  # CPUs other processes kept busy while this was measured
    noisy: bool = False  # measured beyond the noise limits and kept anyway
    drift: float = 0.0  # how far the typical round median lies above the kept figure (fraction)

    @property
    def spread_ms(self) -> float:
        return self.q3_ms - self.q1_ms



def drift(timings: Iterable[Timing]) -> float:
    """How far repeated rounds disagree over several timings: the time-weighted excess of each
    one's typical round median over its kept figure (tiny blocks, whose runs jitter most, weigh
    least)."""
    timings = list(timings)
    kept = sum(t.median_ms for t in timings)
    return sum(t.drift * t.median_ms for t in timings) / kept if kept > 0 else 0.0


@dataclass(frozen=True)
class Measurement:
    conditions: dict
    blocks: dict[str, Timing] = field(repr=False)
    network: Optional[Timing] = None
    method: str = ""


def cache_file() -> Path:
    return timing_cache.cache_file()


def _key(signature: str, shape: object, conditions: dict) -> str:
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


def _run_once(fn: Callable[[], object], device: str) -> float:
    """Milliseconds of one ``fn()``: CUDA events around it on a GPU, a monotonic clock on CPU."""
    import torch

    if device.startswith("cuda"):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return 1e3 * (time.perf_counter() - t0)


def _summary(samples: list[float], kept: float, typical: Optional[float] = None) -> Timing:
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else (samples * 3)
    excess = (typical / kept - 1) if typical is not None and kept > 0 else 0.0
    return Timing(kept, min(q1, kept), max(q3, kept), len(samples), min_ms=min(samples), drift=excess)


def time_callable(fn: Callable[[], object], device: str, warmup: int = 3, min_repeats: int = 5, max_repeats: int = 50,
                  stable: float = 0.05, budget_s: float = 5.0) -> Timing:
    """Median and quartiles of ``fn()`` in milliseconds, repeating until stable (one callable alone:
    calibration's floors keep its ``min_ms``)."""
    import torch

    for _ in range(warmup):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max_repeats:
        samples.append(_run_once(fn, device))
        if len(samples) >= min_repeats:
            q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
            if q3 - q1 <= stable * median or time.perf_counter() - start > budget_s:
                break
    return _summary(samples, statistics.median(samples))


def time_interleaved(fns: dict[Label, Callable[[], object]], device: str, warmup: int = 3, burst: int = 5,
                     min_rounds: int = 3, max_rounds: int = 10, stable: float = 0.05,
                     budget_s: float = 5.0, on_round: Callable[[], None] = lambda: None) -> dict[Label, Timing]:
    """Time several callables in turns: each round runs every callable ``burst`` times; a callable's
    figure is the lowest of its round medians. Stops after ``min_rounds`` once the rounds agree
    within ``stable`` (``drift``), or after ``max_rounds``, or when ``budget_s`` per callable is spent."""
    import torch

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    samples: dict[Label, list[float]] = {name: [] for name in fns}
    medians: dict[Label, list[float]] = {name: [] for name in fns}
    timings: dict[Label, Timing] = {}
    start, limit = time.perf_counter(), budget_s * len(fns)
    for round_ in range(1, max_rounds + 1):
        for name, fn in fns.items():
            runs = [_run_once(fn, device) for _ in range(burst)]
            samples[name] += runs
            medians[name].append(statistics.median(runs))
        on_round()
        timings = {name: _summary(samples[name], min(medians[name]), statistics.median(medians[name])) for name in fns}
        if round_ >= min_rounds and (drift(timings.values()) <= stable or time.perf_counter() - start > limit):
            break
    return timings


def _torch_dtype(dtype: str) -> torch.dtype:
    import torch

    if dtype not in MEASURABLE:
        raise ScalelabError(f"cannot measure in {dtype}: measured latency supports {', '.join(MEASURABLE)}")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


def _prepare(module: nn.Module, shapes: list[Shape], batch: int, device: str, dtype: str, channels_last: bool
             ) -> tuple[nn.Module, list[torch.Tensor]]:
    """Module in eval mode on the device, and random inputs of the block's real shapes."""
    import torch

    tdtype = _torch_dtype(dtype)
    module = module.eval().to(device=device, dtype=tdtype)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        module = module.to(memory_format=torch.channels_last)

    def make(shape: Shape) -> torch.Tensor:
        x = torch.randn(batch, *shape, device=device, dtype=tdtype)
        return x.contiguous(memory_format=fmt) if x.ndim == 4 else x

    inputs = [make(s) for s in shapes]
    return module, inputs


def measure_latency(network: Network, device: str = "cpu", dtype: str = "fp32", batch: int = 1, *,
                    blocks: bool = True, whole: bool = True, channels_last: bool = False,
                    warmup: int = 3, burst: int = 5, min_rounds: int = 3, max_rounds: int = 10,
                    stable: float = 0.05, use_cache: bool = True, cache_path: Optional[Path] = None,
                    progress: bool = True, limits: NoiseLimits = NoiseLimits(),
                    allow_noisy: bool = False) -> Measurement:
    """Measure each inference block alone at its input shape and/or the whole network.

    Timings found clean in the cache are served from it (marked ``cached``); the rest are measured
    together, interleaved, and measured again after a back-off while the machine is too noisy
    (``NoisyMachine`` if it stays so, unless ``allow_noisy``: then kept and marked ``noisy``)."""
    import torch

    if batch < 1:
        raise ScalelabError(f"batch must be at least 1, got {batch}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScalelabError(f"--measure on {device}: CUDA is not available here; use cpu")
    _torch_dtype(dtype)
    conditions = conditions_for(device, dtype, batch, channels_last)
    path = cache_path or cache_file()
    inference = network.inference_blocks()
    work = ([(b.name, b) for b in inference] if blocks else []) + ([("(network)", None)] if whole else [])
    keys = {label: _key(*_signature(network, block), conditions) for label, block in work}
    cached = timing_cache.lookup(path, list(keys.values())) if use_cache else {}
    results = {label: Timing(**{**cached[keys[label]], "cached": True}) for label, _ in work if keys[label] in cached}
    todo = [(label, block) for label, block in work if label not in results]
    noise = Noise(0.0, 0.0)
    if todo:
        fns = _callables(network, todo, device, dtype, batch, channels_last, progress)
        what = f"measuring {network.spec.name}"
        with torch.inference_mode(), bar(f"{what}: {len(todo)} timings, rounds", max_rounds, progress) as steps:
            attempts = iter(range(1, len(limits.backoff_s) + 2))

            def attempt() -> tuple[dict[str, Timing], Noise]:
                steps.say(f"{what}: {len(todo)} timings, attempt {next(attempts)}, rounds", max_rounds, restart=True)
                with LoadWindow() as window:
                    timings = time_interleaved(fns, device, warmup=warmup, burst=burst, min_rounds=min_rounds,
                                               max_rounds=max_rounds, stable=stable, on_round=steps.advance)
                return timings, Noise(window.other_cpus, drift(timings.values()))

            fresh, noise = until_quiet(attempt, what, limits, allow_noisy, on_wait=steps.say)
        noisy = bool(noise.problems(limits))
        fresh = {label: replace(t, other_cpus=noise.other_cpus, noisy=noisy) for label, t in fresh.items()}
        results.update(fresh)
        if use_cache:
            entries = {keys[label]: {k: v for k, v in asdict(t).items() if k != "cached"} for label, t in fresh.items()}
            timing_cache.store(path, entries, noisy, noise.other_cpus, {keys[label]: t.drift for label, t in fresh.items()})
    whole_timing = results.pop("(network)", None)
    method = (f"measured with torch {conditions['torch']} on {conditions['device_name']} ({device}, "
              f"{conditions['threads']} threads): after {warmup} warm-up runs, rounds of {burst} runs per block in "
              f"turn; each figure is the lowest round median, spread = inter-quartile range of the runs; blocks "
              f"timed alone at their input shapes; competing load {noise.other_cpus:.2f} CPUs, rounds "
              f"disagreeing by {noise.spread:.0%}" + (" (NOISY: beyond the limits, kept on request)" if noise.problems(limits) else ""))
    return Measurement(conditions, {label: results[label] for label, b in work if b is not None}, whole_timing, method)


def bar(what: str, total: int, shown: bool) -> ContextManager[progress.Steps]:
    """The timing rounds' progress on stderr (``scalelab.progress``), or none when ``shown`` is false."""
    return progress.progress(what, total) if shown else nullcontext(progress.Steps())


def _signature(network: Network, block: Optional[ResolvedBlock]) -> tuple[str, list[Shape]]:
    """What a timing depends on: the layer tree(s) and input shape(s) timed."""
    if block is None:
        inference = network.inference_blocks()
        return repr([(b.name, b.inputs, b.layers) for b in inference]), [network.input_shape]
    shapes = list(block.in_shape) if isinstance(block.in_shape, list) else [block.in_shape]  # a merge's: a list
    if block.source:
        shapes = [network.input_shape]  # a source takes the network input for its batch size, as in the Net
    return repr(block.layers), shapes


def _callables(network: Network, work: list[tuple[str, Optional[ResolvedBlock]]], device: str, dtype: str, batch: int, channels_last: bool,
               progress: bool) -> dict[str, Callable[[], object]]:
    """Each block (or the whole network) built, on the device, with random inputs of its shapes."""
    from scalelab.build import Net, to_torch  # torch: only when a module is built

    fns: dict[str, Callable[[], object]] = {}
    with bar(f"measuring {network.spec.name}: building", len(work), progress) as steps:
        for label, block in work:
            _, shapes = _signature(network, block)
            module = Net(network) if block is None else to_torch(block.layers)
            module, inputs = _prepare(module, shapes, batch, device, dtype, channels_last)
            arg = inputs[0] if len(inputs) == 1 else inputs
            fns[label] = (lambda m, x: lambda: m(x))(module, arg)  # eval Net frees as it goes
            steps.advance()
    return fns
