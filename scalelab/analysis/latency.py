"""Predicted latency: eager PyTorch as two timelines, the host issuing operations and the device running them.

Device time of each inner layer of a block (its LayerCost record, scaled by the batch; the layer the
record belongs to gives its latency class and width through its ``latency`` face)::

    flops   = 2 * macs + ops                                   (2 FLOPs per multiply-add)
    bytes   = dtype bytes * (params + in_elems + out_elems)    (weights read once per batch)
    compute = flops / (peak FLOP/s[dtype] * achievable_compute * efficiency[class] * n / (n + half[class]))
    memory  = bytes / (memory bandwidth * achievable_bandwidth)
    device  = max(compute, memory) + overhead[class]           (Williams et al. 2009, "Roofline")
    device  = compute + memory + overhead[class]               (profiles with combine: sum)

The queue (eager PyTorch with CUDA's asynchronous launches): the host issues the operations in
order, each taking the profile's ``host_us`` (Python, dispatcher and launch); the device runs them in
order, and an operation starts there once it has been issued and the previous one has finished::

    issued_k = issued_{k-1} + host_k
    end_k    = max(issued_k, end_{k-1}) + device_k

The network's latency is end of the last operation; an operation's (and a block's) share is how far
it moves that end (end_k - end_{k-1}), so per-block figures add up to the total. At batch 1 the
host's issue times set the pace (host-bound: flat in batch); at large batch the device's (linear in
batch). A CPU profile has no separate host (``host_us`` 0): each op's fixed cost is in its device time.

Precisions: ``fp32`` on a GPU whose profile gives a TF32 peak runs convolutions as TF32 (PyTorch's
default, torch.backends.cudnn.allow_tf32) and matrix multiplies in FP32 (torch.backends.cuda.matmul.
allow_tf32 is off by default since PyTorch 1.12); ``tf32`` runs both as TF32; ``amp`` is autocast:
fp16 compute (bf16 where the profile has no fp16) on fp16 activations, fp32 weights, and one cast
kernel per weight (autocast casts each weight at its first use in a forward and caches the copy,
torch/csrc/autocast_mode.cpp cached_cast) plus one for the network input. A profile written by
``scalelab calibrate`` sums the terms: that form is linear in its unknowns (``latency_fit``).

where n is the layer's output channels (a conv) or features (a linear layer) and half[class], where
the profile gives one, the width at which the class reaches half its efficiency. Flatten (a view) and
dropout (the identity at inference) launch no kernel and cost nothing. The latency class
(``LatencyClass``) picks the efficiency and the fixed per-layer device overhead (the profile's launch
overhead unless it gives one for the class).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from scalelab.analysis.memory import dtype_bytes
from scalelab.blocks.layers import LatencyClass, LayerCost, latency_of
from scalelab.devices import DeviceProfile, load_profile
from scalelab.devices.profile import regime_error
from scalelab.errors import ScalelabError
from scalelab.graph.network import Network

#: the classes cuDNN runs as convolutions (TF32 under fp32 on Ampere and later) and autocast casts weights for
CONV_CLASSES = (LatencyClass.DENSE_CONV, LatencyClass.POINTWISE_CONV, LatencyClass.GROUPED_CONV,
                LatencyClass.DEPTHWISE_CONV, LatencyClass.STRIDED_DEPTHWISE_CONV)
WEIGHTED_CLASSES = CONV_CLASSES + (LatencyClass.LINEAR,)
CAST = "autocast cast"  # the label of the kernels autocast adds


def latency_class(node: object) -> LatencyClass:
    """The latency class of a layer (its ``latency`` face): picks the efficiency and fixed cost."""
    return latency_of(node)[0]


@dataclass(frozen=True)
class LayerTime:
    label: str  # the cost label of the layer timed (or "<label> autocast cast")
    latency_class: LatencyClass
    compute_ms: float
    memory_ms: float
    overhead_ms: float
    combine: str = "max"  # the profile's: max (roofline) or sum (the form fitted on whole networks)
    host_ms: float = 0.0  # time the host takes to issue it (eager dispatch and launch)
    added_ms: Optional[float] = None  # how far it moves the end of the queue (None: not queued; its device time)

    @property
    def device_ms(self) -> float:
        if self.combine == "sum":
            return self.compute_ms + self.memory_ms + self.overhead_ms
        return max(self.compute_ms, self.memory_ms) + self.overhead_ms

    @property
    def ms(self) -> float:
        return self.device_ms if self.added_ms is None else self.added_ms

    @property
    def bound(self) -> str:
        if self.latency_class is LatencyClass.FREE:
            return "free"
        if self.added_ms is not None and self.added_ms > self.device_ms * (1 + 1e-9):
            return "host"  # the device waited for the host before it could start this one
        return "compute" if self.compute_ms >= self.memory_ms else "memory"


@dataclass(frozen=True)
class BlockLatency:
    name: str
    layers: tuple[LayerTime, ...] = field(repr=False)

    @property
    def ms(self) -> float:
        return sum(t.ms for t in self.layers)

    @property
    def device_ms(self) -> float:
        return sum(t.device_ms for t in self.layers)

    @property
    def kernels(self) -> int:
        return sum(1 for t in self.layers if t.latency_class is not LatencyClass.FREE)


@dataclass(frozen=True)
class LatencyPrediction:
    device: str
    dtype: str
    batch: int
    method: str  # how the figure was obtained, printed next to it
    blocks: dict[str, BlockLatency] = field(repr=False)
    regime: str = "device_bound"  # host_bound (batch <= 8), transition, device_bound (batch >= 64)
    error: float = 0.5  # the profile's stated held-out error for the regime (fraction of the measured)
    error_basis: str = ""  # how that error was obtained

    @property
    def total_ms(self) -> float:
        return sum(b.ms for b in self.blocks.values())

    @property
    def host_ms(self) -> float:
        return sum(t.host_ms for b in self.blocks.values() for t in b.layers)

    @property
    def device_ms(self) -> float:
        return sum(b.device_ms for b in self.blocks.values())

    def band(self, ms: Optional[float] = None) -> tuple[float, float]:
        """The range the stated error allows around ``ms`` (default the total)."""
        value = self.total_ms if ms is None else ms
        return value * (1 - self.error), value * (1 + self.error)

    @property
    def error_text(self) -> str:
        """'±18% (held-out, host-bound regime ...)': printed beside every predicted latency."""
        return f"±{self.error:.0%} ({self.error_basis})"


def _profile(device: "str | Path | DeviceProfile") -> DeviceProfile:
    return device if isinstance(device, DeviceProfile) else load_profile(device)


def compute_dtype(dtype: str, profile: DeviceProfile, latency_class: LatencyClass) -> str:
    """The precision a layer computes in (see the module's docstring: tf32 defaults, autocast)."""
    if dtype == "amp":
        return "fp16" if "fp16" in profile.peak_flops else "bf16"
    convs_tf32 = profile.kind == "gpu" and "tf32" in profile.peak_flops
    if dtype == "fp32" and convs_tf32 and latency_class in CONV_CLASSES:
        return "tf32"  # torch.backends.cudnn.allow_tf32 defaults to True
    if dtype == "tf32" and latency_class not in WEIGHTED_CLASSES:
        return "fp32"  # elementwise kernels have no TF32 path
    return dtype


def storage_bytes(dtype: str) -> int:
    """Bytes per element a kernel reads and writes (autocast: fp16 activations and weight copies)."""
    return 2 if dtype == "amp" else dtype_bytes(dtype)


def layer_time(cost: LayerCost, latency_class: LatencyClass, profile: DeviceProfile, dtype: str, batch: int,
               channels: Optional[int] = None) -> LayerTime:
    if latency_class is LatencyClass.FREE:
        return LayerTime(cost.label, latency_class, 0.0, 0.0, 0.0)
    flops = batch * (2 * cost.macs + cost.ops)
    moved = storage_bytes(dtype) * (cost.params + batch * (cost.in_elems + cost.out_elems))
    rate = (profile.flops(compute_dtype(dtype, profile, latency_class)) * profile.achievable_compute
            * profile.class_efficiency(latency_class, channels))
    return LayerTime(cost.label, latency_class, 1e3 * flops / rate, 1e3 * moved / _bandwidth(profile),
                     profile.class_overhead_us(latency_class) / 1e3, profile.combine, profile.host_us / 1e3)


def _bandwidth(profile: DeviceProfile) -> float:
    return profile.memory_bandwidth * profile.achievable_bandwidth


def cast_time(label: str, elements: int, profile: DeviceProfile) -> LayerTime:
    """An autocast cast kernel: reads ``elements`` fp32 values, writes them as fp16 (6 bytes each)."""
    return LayerTime(f"{label} {CAST}", LatencyClass.ELEMENTWISE, 0.0, 1e3 * 6 * elements / _bandwidth(profile),
                     profile.class_overhead_us(LatencyClass.ELEMENTWISE) / 1e3, profile.combine, profile.host_us / 1e3)


def _block_times(costs: list[LayerCost], profile: DeviceProfile, dtype: str, batch: int,
                 first: list[bool]) -> list[LayerTime]:
    """The block's operations in order: each layer, preceded under autocast by its weight's cast
    (and, before the network's first weighted layer, the input's)."""
    times = []
    for c in costs:
        latency_class, width = latency_of(c.node)
        if dtype == "amp" and latency_class in WEIGHTED_CLASSES:
            if first[0]:
                times.append(cast_time(f"{c.label} input", batch * c.in_elems, profile))
                first[0] = False
            if c.params:
                times.append(cast_time(c.label, c.params, profile))
        times.append(layer_time(c, latency_class, profile, dtype, batch, width))
    return times


def predict_block(costs: list[LayerCost], profile: DeviceProfile, dtype: str, batch: int, name: str = "") -> BlockLatency:
    """Each cost record timed by the latency class of the layer it belongs to (device times; not queued)."""
    return BlockLatency(name, tuple(_block_times(costs, profile, dtype, batch, [True])))


def queue(times: list[LayerTime]) -> list[LayerTime]:
    """Run the two timelines (module docstring); each op gets how far it moves the end of the queue."""
    issued = end = 0.0
    out = []
    for t in times:
        if t.latency_class is LatencyClass.FREE:
            out.append(replace(t, added_ms=0.0))
            continue
        issued += t.host_ms
        added = max(issued - end, 0.0) + t.device_ms  # waiting for the host, then running
        out.append(replace(t, added_ms=added))
        end += added
    return out


def regime(batch: int) -> str:
    """host_bound up to batch 8, device_bound from 64 (issue 20's regimes), transition between."""
    return "host_bound" if batch <= 8 else "device_bound" if batch >= 64 else "transition"


def predict_latency(network: Network, device: "str | Path | DeviceProfile", dtype: str = "fp32",
                    batch: int = 1) -> LatencyPrediction:
    """Per-block predicted latency (batch of ``batch``, inference blocks only) on a device profile."""
    if batch < 1:
        raise ScalelabError(f"batch must be at least 1, got {batch}")
    profile = _profile(device)
    dtype_bytes(dtype)
    if dtype == "tf32" and "tf32" not in profile.peak_flops:
        raise ScalelabError(f"device '{profile.name}' has no tf32 figure (it gives {', '.join(profile.peak_flops)})")
    first = [True]
    blocks = [(b.name, _block_times(b.costs, profile, dtype, batch, first)) for b in network.inference_blocks()]
    queued = iter(queue([t for _, times in blocks for t in times]))
    result = {name: BlockLatency(name, tuple(next(queued) for _ in times)) for name, times in blocks}
    which = regime(batch)
    error, basis = regime_error(profile, which)
    return LatencyPrediction(profile.name, dtype, batch, _method(profile, dtype), result, which, error, basis)


def _method(profile: DeviceProfile, dtype: str) -> str:
    calibrated = " (calibrated)" if profile.calibration else ""
    compute = (f"compute at {profile.achievable_compute:.0%} of peak {_precision(profile, dtype)} FLOP/s x kind "
               f"efficiency{_thin(profile)}, bytes at {profile.achievable_bandwidth:.0%} of "
               f"{profile.memory_bandwidth / 1e9:.0f} GB/s")
    if profile.combine == "sum":
        method = f"fitted model on profile {profile.name}{_fitted(profile)}: per layer sum of {compute}, and {_overheads(profile)}"
    else:
        method = f"roofline on profile {profile.name}{calibrated}: per layer max({compute}) + {_overheads(profile)}"
    if profile.host_us:
        method += (f"; eager queue: the host issues each op in {profile.host_us:g} us, the device runs them in order "
                   f"(latency = when the last op ends)")
    warning = (profile.calibration or {}).get("warning")
    if warning:
        method = f"WARNING, {warning}. {method}"  # every prediction from such a profile says so first
    return method


def _precision(profile: DeviceProfile, dtype: str) -> str:
    """Which precision was used, said where PyTorch's defaults or autocast decide it."""
    if dtype == "amp":
        return (f"{compute_dtype(dtype, profile, LatencyClass.DENSE_CONV)} (autocast: fp32 weights, "
                f"a cast kernel per weight and for the input)")
    if dtype == "fp32" and compute_dtype(dtype, profile, LatencyClass.DENSE_CONV) == "tf32":
        return "fp32 with convolutions as TF32 (PyTorch's default on this device), matrix multiplies fp32,"
    return dtype


def _fitted(profile: DeviceProfile) -> str:
    """How the profile's figures were fitted, from what `scalelab calibrate` records."""
    c = profile.calibration or {}
    if "synthetic_networks" not in c:
        return ""
    held = f", leave-one-out {c['held_out_median_error']:.1%}" if "held_out_median_error" in c else ""
    real = f"{c['real_shaped_networks']} real-shaped and " if c.get("real_shaped_networks") else ""
    return (f" (calibrated on {real}{c['synthetic_networks']} synthetic networks, median fit error "
            f"{c['fit_median_error']:.1%}{held})")


def _thin(profile: DeviceProfile) -> str:
    if not profile.half_efficiency_channels:
        return ""
    return " x n / (n + half) for n output channels (half: " + ", ".join(
        f"{kind} {n:g}" for kind, n in profile.half_efficiency_channels.items()) + ")"


def _overheads(profile: DeviceProfile) -> str:
    if not profile.overhead_us:
        return f"{profile.launch_overhead_us:g} us per kernel"
    own = ", ".join(f"{kind} {us:g}" for kind, us in profile.overhead_us.items())
    return f"a fixed time per layer by kind (us: {own}; others {profile.launch_overhead_us:g})"


def explain(prediction: LatencyPrediction, top: int = 5) -> Optional[str]:
    """One line naming the slowest blocks, for reports."""
    ranked = sorted(prediction.blocks.values(), key=lambda b: b.ms, reverse=True)[:top]
    if not ranked:
        return None
    return ", ".join(f"{b.name} {b.ms:.3f} ms" for b in ranked)
