"""Measured latency: each block built alone at its real input shape, and the whole network, timed
with torch on CPU or CUDA. torch is imported inside the functions only.

Method (robust to a busy machine and to an idle one that jitters): warm-up runs, then short rounds
in which every block to be timed runs a short burst in turn (interleaved, so that a burst of
competing work hits several blocks a little rather than one block a lot). A block's figure is the
lowest of its round medians: one slow run cannot move a median, and competing work or jitter only
ever raises a round's. Rounds go on until that kept figure has settled (the lowest round median of
the odd rounds and that of the even rounds agree within ``stable``, ``scalelab.analysis.noise``) or
the time budget is spent. The competing load and how far the kept figure still moves are recorded;
under competing load the measurement is repeated after a back-off and refused if the load stays,
unless the caller accepts it marked noisy. Results are cached (``scalelab.analysis.timing_cache``)
keyed by (layer tree, input shape, device, dtype, batch, threads, channels_last, torch version).
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
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager, Iterator, Optional, TypeVar

from scalelab import progress
from scalelab.analysis import timing_cache
from scalelab.analysis import noise as machine_load  # its LoadWindow looked up at each call: tests stand in a load
from scalelab.analysis.noise import SETTLE, Noise, NoiseLimits, until_quiet
from scalelab.blocks.layers import Shape
from scalelab.errors import ScalelabError
from scalelab.graph.network import Network, ResolvedBlock

if TYPE_CHECKING:
    import torch
    from torch import nn

#: what names a callable timed in turns: a block's label, or a calibration network's index
Label = TypeVar("Label", bound=Hashable)

MEASURABLE = ("fp32", "fp16", "bf16", "amp", "tf32")
#: what autocast computes in under --dtype amp: fp16 on a GPU (as timm's and NVIDIA's AMP tables), bf16 on a CPU
#: (torch's CPU autocast has no fp16 kernels worth timing)
AUTOCAST = {"cuda": "float16", "cpu": "bfloat16"}


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
    unsettled: float = 0.0  # how far the kept figure moves between the odd and the even rounds (fraction)
    rounds: int = 0

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


def unsettled(timings: Iterable[Timing]) -> float:
    """How far the kept figures still move between halves of the rounds, time-weighted (as ``drift``)."""
    timings = list(timings)
    kept = sum(t.median_ms for t in timings)
    return sum(t.unsettled * t.median_ms for t in timings) / kept if kept > 0 else 0.0


def split_half(medians: list[float]) -> float:
    """How far the lowest round median of the odd rounds and that of the even rounds disagree, as a
    fraction of the lowest of all: small once more rounds no longer lower the kept figure. One
    round cannot tell: 1.0."""
    if len(medians) < 2 or min(medians) <= 0:
        return 1.0
    return abs(min(medians[0::2]) - min(medians[1::2])) / min(medians)


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


def _summary(samples: list[float], kept: float, typical: Optional[float] = None,
             medians: Optional[list[float]] = None) -> Timing:
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else (samples * 3)
    excess = (typical / kept - 1) if typical is not None and kept > 0 else 0.0
    rounds = len(medians) if medians else 0
    return Timing(kept, min(q1, kept), max(q3, kept), len(samples), min_ms=min(samples), drift=excess,
                  unsettled=split_half(medians) if medians else 0.0, rounds=rounds)


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


def time_interleaved(fns: dict[Label, Callable[[], object]], device: str, warmup: int = 3, burst: int = 3,
                     min_rounds: int = 6, max_rounds: int = 40, stable: float = SETTLE,
                     budget_s: float = 5.0, on_round: Callable[[], None] = lambda: None) -> dict[Label, Timing]:
    """Time several callables in turns: each round runs every callable ``burst`` times; a callable's
    figure is the lowest of its round medians. Stops after ``min_rounds`` once the kept figures have
    settled within ``stable`` (``unsettled``: odd against even rounds), or after ``max_rounds``, or
    when ``budget_s`` per callable is spent. Many short rounds give jitter many chances to leave a
    round alone."""
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
        timings = {name: _summary(samples[name], min(medians[name]), statistics.median(medians[name]), medians[name])
                   for name in fns}
        if round_ >= min_rounds and (unsettled(timings.values()) <= stable or time.perf_counter() - start > limit):
            break
    return timings


def _torch_dtype(dtype: str) -> torch.dtype:
    """The dtype of the module's weights and inputs: amp (autocast) and tf32 keep fp32 tensors."""
    import torch

    if dtype not in MEASURABLE:
        raise ScalelabError(f"cannot measure in {dtype}: measured latency supports {', '.join(MEASURABLE)}")
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype, torch.float32)


def check_precision(device: str, dtype: str) -> None:
    """Refuse, before anything is built, a precision torch cannot run on ``device``."""
    _torch_dtype(dtype)
    if dtype == "tf32" and not device.startswith("cuda"):
        raise ScalelabError("cannot measure tf32 on cpu: TF32 is a tensor-core format of NVIDIA GPUs (Ampere and "
                            "later) and a CPU has no such mode; measure fp32 on cpu, or tf32 with --measure-on cuda")


def precision(device: str, dtype: str) -> ContextManager[object]:
    """What runs the timed modules in ``dtype``: autocast for amp (fp16 on a GPU, bf16 on a CPU: fp32
    weights, the casts autocast adds included in the time), TF32 matrix multiplies and convolutions
    for tf32 (restored afterwards), nothing for the others."""
    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    if dtype == "amp":
        return torch.autocast(kind, dtype=getattr(torch, AUTOCAST[kind]))
    if dtype == "tf32":
        return _tf32()
    return nullcontext()


@contextmanager
def _tf32() -> Iterator[None]:
    import torch

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


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


@dataclass(frozen=True)
class Rounds:
    """How ``measure_latency`` times: warm-up runs, runs per block in a round, rounds, settle tolerance."""

    warmup: int = 3
    burst: int = 3
    min_rounds: int = 6
    max_rounds: int = 30
    stable: float = SETTLE


def measure_latency(network: Network, device: str = "cpu", dtype: str = "fp32", batch: int = 1, *,
                    blocks: bool = True, whole: bool = True, channels_last: bool = False,
                    rounds: Rounds = Rounds(), use_cache: bool = True, cache_path: Optional[Path] = None,
                    progress: bool = True, limits: NoiseLimits = NoiseLimits(),
                    allow_noisy: bool = False) -> Measurement:
    """Measure each inference block alone at its input shape and/or the whole network.

    Timings found clean in the cache are served from it (marked ``cached``); the rest are measured
    together, interleaved, until settled, and measured again (after a back-off under competing load)
    while noisy (``NoisyMachine`` if it stays so, unless ``allow_noisy``: then kept and marked ``noisy``)."""
    import torch

    if batch < 1:
        raise ScalelabError(f"batch must be at least 1, got {batch}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ScalelabError(f"--measure on {device}: CUDA is not available here; use cpu")
    check_precision(device, dtype)
    conditions = conditions_for(device, dtype, batch, channels_last)
    if dtype == "amp":
        conditions["autocast"] = AUTOCAST["cuda" if device.startswith("cuda") else "cpu"]
    path = cache_path or cache_file()
    inference = network.inference_blocks()
    work = ([(b.name, b) for b in inference] if blocks else []) + ([("(network)", None)] if whole else [])
    keys = {label: _key(*_signature(network, block), conditions) for label, block in work}
    cached = timing_cache.lookup(path, list(keys.values())) if use_cache else {}
    results = {label: Timing(**{**cached[keys[label]], "cached": True}) for label, _ in work if keys[label] in cached}
    todo = [(label, block) for label, block in work if label not in results]
    noise = Noise(0.0, 0.0)
    if todo:
        fresh, noise = _measure(network, todo, conditions, rounds, progress, limits, allow_noisy)
        noisy = bool(noise.problems(limits))
        fresh = {label: replace(t, other_cpus=noise.other_cpus, noisy=noisy) for label, t in fresh.items()}
        results.update(fresh)
        if use_cache:
            entries = {keys[label]: {k: v for k, v in asdict(t).items() if k != "cached"} for label, t in fresh.items()}
            timing_cache.store(path, entries, noisy, noise.other_cpus,
                               {keys[label]: t.unsettled for label, t in fresh.items()})
    whole_timing = results.pop("(network)", None)
    autocast = f", autocast to {conditions['autocast']}" if "autocast" in conditions else ""
    method = (f"measured with torch {conditions['torch']} on {conditions['device_name']} ({device}, "
              f"{conditions['threads']} threads{autocast}): after {rounds.warmup} warm-up runs, rounds of {rounds.burst} "
              f"runs per block in turn until each block's lowest round median, its figure, settles (odd and even "
              f"rounds within {rounds.stable:.0%}); spread = inter-quartile range of the runs; blocks timed alone at "
              f"their input shapes; competing load {noise.other_cpus:.2f} CPUs, kept figures settled to "
              f"{noise.spread:.1%}, rounds disagreeing by {noise.disagreement:.0%}"
              + (" (NOISY: beyond the limits, kept on request)" if noise.problems(limits) else ""))
    return Measurement(conditions, {label: results[label] for label, b in work if b is not None}, whole_timing, method)


def _measure(network: Network, todo: list[tuple[str, Optional[ResolvedBlock]]], conditions: dict, rounds: Rounds,
             shown: bool, limits: NoiseLimits, allow_noisy: bool) -> tuple[dict[str, Timing], Noise]:
    """Build what is to be timed and time it, interleaved, until the machine lets it be measured cleanly."""
    import torch

    device, dtype = conditions["device"], conditions["dtype"]
    fns = _callables(network, todo, device, dtype, conditions["batch"], conditions["channels_last"], shown)
    what = f"measuring {network.spec.name}"
    with torch.inference_mode(), precision(device, dtype), bar(f"{what}: {len(todo)} timings, rounds",
                                                                rounds.max_rounds, shown) as steps:
        attempts = iter(range(1, len(limits.backoff_s) + 2))

        def attempt() -> tuple[dict[str, Timing], Noise]:
            steps.say(f"{what}: {len(todo)} timings, attempt {next(attempts)}, rounds", rounds.max_rounds, restart=True)
            with machine_load.LoadWindow() as window:
                timings = time_interleaved(fns, device, warmup=rounds.warmup, burst=rounds.burst,
                                           min_rounds=rounds.min_rounds, max_rounds=rounds.max_rounds,
                                           stable=rounds.stable, on_round=steps.advance)
            return timings, Noise(window.other_cpus, unsettled(timings.values()), drift(timings.values()))

        return until_quiet(attempt, what, limits, allow_noisy, on_wait=steps.say)


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
