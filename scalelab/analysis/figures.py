"""Whole-network figures of one network, the unit that ``compare`` sets side by side and that
ensembles and multi-crop combine: parameters, MACs, other ops, memory, predicted latency and the
published accuracy, all from the analysis path (no torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from scalelab.analysis import analyze
from scalelab.analysis.latency import predict_latency
from scalelab.analysis.memory import inference_memory, training_memory
from scalelab.graph import Network


@dataclass(frozen=True)
class NetworkFigures:
    name: str
    resolution: tuple[int, int]
    batch: int
    dtype: str
    params: int
    macs: int
    other_ops: int
    weight_bytes: int
    activation_peak_bytes: int  # most activation bytes alive at once at inference
    training_bytes: int  # weights + gradients + optimizer state + saved activations, one step
    optimizer: str
    predicted_ms: Optional[float] = None
    device: Optional[str] = None
    latency_method: Optional[str] = None
    top1: Optional[float] = None
    top1_source: Optional[str] = None
    top1_dataset: Optional[str] = None
    top1_protocol: Optional[dict] = None  # how top1 was measured (``spec.model.Protocol``); None: not stated
    latency_error: Optional[float] = None  # the profile's held-out error for the batch's regime (fraction)

    @property
    def inference_bytes(self) -> int:
        """Weights plus the activation peak: what inference holds at its peak."""
        return self.weight_bytes + self.activation_peak_bytes

    def as_dict(self) -> dict:
        return {**asdict(self), "resolution": list(self.resolution), "inference_bytes": self.inference_bytes}


def network_figures(network: Network, *, batch: int = 1, dtype: str = "fp32", device: Optional[str] = None,
                    optimizer: str = "sgd") -> NetworkFigures:
    """The figures of ``network`` at a batch and dtype; latency only when a device profile is named."""
    total = analyze(network, batch=batch).total
    memory = inference_memory(network, dtype, batch)
    training = training_memory(network, dtype, batch, optimizer)
    latency = None
    if device is not None:
        latency = predict_latency(network, device, dtype, batch)
    ref = network.spec.reference
    return NetworkFigures(
        network.spec.name, (network.input_shape[1], network.input_shape[2]), batch, dtype, total.params, total.macs, total.ops,
        memory.weight_bytes, memory.peak_bytes, training.total_bytes, optimizer,
        latency.total_ms if latency else None, latency.device if latency else None,
        f"{latency.method}; each figure {latency.error_text}" if latency else None,
        ref.top1 if ref else None, ref.source if ref else None, ref.dataset if ref else None,
        ref.protocol.model_dump() if ref and ref.protocol else None,
        latency.error if latency else None,
    )
