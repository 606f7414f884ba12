"""Predicted latency: a per-layer roofline summed per block, from a device profile.

For each inner layer of a block (its LayerCost record, scaled by the batch; the layer the record
belongs to gives its latency class and width through its ``latency`` face)::

    flops   = 2 * macs + ops                                   (2 FLOPs per multiply-add)
    bytes   = dtype bytes * (params + in_elems + out_elems)    (weights read once per batch)
    compute = flops / (peak FLOP/s[dtype] * achievable_compute * efficiency[class] * n / (n + half[class]))
    memory  = bytes / (memory bandwidth * achievable_bandwidth)
    time    = max(compute, memory) + overhead[class]           (Williams et al. 2009, "Roofline")
    time    = compute + memory + overhead[class]                (profiles with combine: sum)

A profile written by ``scalelab calibrate`` sums the terms: that form is linear in its unknowns, so
they are fitted by least squares on synthetic networks timed whole (``scalelab.analysis.latency_fit``), and
the prediction uses exactly the fitted form.

where n is the layer's output channels (a conv) or features (a linear layer) and half[class], where
the profile gives one, the width at which the class reaches half its efficiency: a matrix multiply with
few output rows fills few vector registers (a 1x1 projection to 24 channels runs at a fraction of
the rate of one to 384). Flatten (a view) and dropout (the identity at inference) launch no kernel and cost nothing. The
latency class (``LatencyClass``) picks the efficiency and the fixed per-layer overhead (the profile's
launch overhead unless it gives one for the class): depthwise convolutions reach a small fraction of a device's peak,
strided ones less again, and on a CPU each costs tens of microseconds however small its map, where
a ReLU costs a few; a network of many small layers (an inverted residual has six to nine) pays that
fixed cost per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from scalelab.analysis.memory import dtype_bytes
from scalelab.blocks.layers import LatencyClass, LayerCost, latency_of
from scalelab.devices import DeviceProfile, load_profile
from scalelab.errors import ScalelabError
from scalelab.graph.network import Network

def latency_class(node: object) -> LatencyClass:
    """The latency class of a layer (its ``latency`` face): picks the efficiency and fixed cost."""
    return latency_of(node)[0]


@dataclass(frozen=True)
class LayerTime:
    label: str  # the cost label of the layer timed
    latency_class: LatencyClass
    compute_ms: float
    memory_ms: float
    overhead_ms: float
    combine: str = "max"  # the profile's: max (roofline) or sum (the form fitted on whole networks)

    @property
    def ms(self) -> float:
        if self.combine == "sum":
            return self.compute_ms + self.memory_ms + self.overhead_ms
        return max(self.compute_ms, self.memory_ms) + self.overhead_ms

    @property
    def bound(self) -> str:
        if self.latency_class is LatencyClass.FREE:
            return "free"
        return "compute" if self.compute_ms >= self.memory_ms else "memory"


@dataclass(frozen=True)
class BlockLatency:
    name: str
    layers: tuple[LayerTime, ...] = field(repr=False)

    @property
    def ms(self) -> float:
        return sum(t.ms for t in self.layers)

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

    @property
    def total_ms(self) -> float:
        return sum(b.ms for b in self.blocks.values())


def _profile(device: "str | Path | DeviceProfile") -> DeviceProfile:
    return device if isinstance(device, DeviceProfile) else load_profile(device)


def layer_time(cost: LayerCost, latency_class: LatencyClass, profile: DeviceProfile, dtype: str, batch: int,
               channels: Optional[int] = None) -> LayerTime:
    if latency_class is LatencyClass.FREE:
        return LayerTime(cost.label, latency_class, 0.0, 0.0, 0.0)
    flops = batch * (2 * cost.macs + cost.ops)
    moved = dtype_bytes(dtype) * (cost.params + batch * (cost.in_elems + cost.out_elems))
    rate = profile.flops(dtype) * profile.achievable_compute * profile.class_efficiency(latency_class, channels)
    bandwidth = profile.memory_bandwidth * profile.achievable_bandwidth
    return LayerTime(cost.label, latency_class, 1e3 * flops / rate, 1e3 * moved / bandwidth,
                     profile.class_overhead_us(latency_class) / 1e3, profile.combine)


def predict_block(costs: list[LayerCost], profile: DeviceProfile, dtype: str, batch: int, name: str = "") -> BlockLatency:
    """Each cost record timed by the latency class of the layer it belongs to."""
    times = []
    for c in costs:
        latency_class, width = latency_of(c.node)
        times.append(layer_time(c, latency_class, profile, dtype, batch, width))
    return BlockLatency(name, tuple(times))


def predict_latency(network: Network, device: "str | Path | DeviceProfile", dtype: str = "fp32",
                    batch: int = 1) -> LatencyPrediction:
    """Per-block predicted latency (batch of ``batch``, inference blocks only) on a device profile."""
    if batch < 1:
        raise ScalelabError(f"batch must be at least 1, got {batch}")
    profile = _profile(device)
    dtype_bytes(dtype)
    blocks = {b.name: predict_block(b.costs, profile, dtype, batch, b.name)
              for b in network.inference_blocks()}
    calibrated = " (calibrated)" if profile.calibration else ""
    compute = (f"compute at {profile.achievable_compute:.0%} of peak {dtype} FLOP/s x kind efficiency{_thin(profile)}, "
               f"bytes at {profile.achievable_bandwidth:.0%} of {profile.memory_bandwidth / 1e9:.0f} GB/s")
    if profile.combine == "sum":
        method = f"fitted model on profile {profile.name}{_fitted(profile)}: per layer sum of {compute}, and {_overheads(profile)}"
    else:
        method = f"roofline on profile {profile.name}{calibrated}: per layer max({compute}) + {_overheads(profile)}"
    warning = (profile.calibration or {}).get("warning")
    if warning:
        method = f"WARNING, {warning}. {method}"  # every prediction from such a profile says so first
    return LatencyPrediction(profile.name, dtype, batch, method, blocks)


def _fitted(profile: DeviceProfile) -> str:
    """How the profile's figures were fitted, from what `scalelab calibrate` records."""
    c = profile.calibration or {}
    if "synthetic_networks" not in c:
        return ""
    held = f", leave-one-out {c['held_out_median_error']:.1%}" if "held_out_median_error" in c else ""
    return (f" (calibrated on {c['synthetic_networks']} synthetic networks, median fit error "
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
