"""Ensembles and multi-crop testing, costed: the course's two benchmark tricks.

Rules (stated in every report):
  * crops multiply the work and keep the parameters: N crops of a batch of B images run as one
    batch of N x B, so MACs, other ops and activation memory are N times one crop's (exactly: every
    per-sample figure scales with the batch) and latency is predicted at batch N x B;
  * an ensemble sums its members: parameters, weights, MACs, other ops and latency add up (members
    run one after another); the activation peak is the largest member's, since one member runs at a
    time; training memory adds up (every member is trained, at the training batch: crops are a
    test-time trick);
  * averaging the K x N output vectors costs K x N x C more ops per image (C outputs: K x N - 1 adds
    and one scaling per output), listed apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional

from scalelab.analysis.figures import NetworkFigures, network_figures
from scalelab.analysis.memory import training_memory
from scalelab.blocks.layers import elements
from scalelab.errors import ScalelabError
from scalelab.scaling.accuracy.ensemble_gain import estimate_top1

if TYPE_CHECKING:
    from scalelab.scaling.accuracy.ensemble_gain import GainEstimate

RULES = ("Crops multiply the work and keep the parameters: N crops run as one batch of N x batch images "
         "(MACs, other ops and activations x N; latency predicted at that batch). An ensemble sums its members: "
         "parameters, weights, MACs, other ops, training memory and latency add up (members run one after another); "
         "the activation peak is the largest member's. Averaging the K x N outputs adds K x N x outputs ops per image.")


def parse_ensemble(text: Optional[str], spec: str) -> list[str]:
    """'3' -> three copies of ``spec``; 'a,b' -> ``spec`` and a and b; None -> ``spec`` alone."""
    if text is None:
        return [spec]
    text = text.strip()
    if text.isdigit():
        k = int(text)
        if k < 1:
            raise ScalelabError(f"--ensemble: at least one member, got '{text}'")
        return [spec] * k
    names = [t.strip() for t in text.split(",")]
    if not text or any(not n for n in names):
        raise ScalelabError(f"--ensemble: expected a count such as 3 or spec names such as resnet50,resnet101, got '{text}'")
    return [spec, *names]


@dataclass(frozen=True)
class Ensemble:
    crops: int
    batch: int
    members: tuple[NetworkFigures, ...]  # each at batch x crops
    outputs: int  # output elements per image (classes)

    @property
    def models(self) -> int:
        return len(self.members)

    def _sum(self, key: str) -> Optional[float]:
        values = [getattr(m, key) for m in self.members]
        return None if any(v is None for v in values) else sum(values)

    @property
    def averaging_ops(self) -> int:
        views = self.models * self.crops
        return views * self.outputs * self.batch if views > 1 else 0

    def accuracy(self) -> Optional[GainEstimate]:
        """The gain law's top-1 from the members' mean published top-1, or None if one has none."""
        top1s = [m.top1 for m in self.members]
        if any(t is None for t in top1s):
            return None

        return estimate_top1(sum(t for t in top1s if t is not None) / self.models, self.models, self.crops)

    def total(self) -> dict:
        return {
            "params": self._sum("params"),
            "weight_bytes": self._sum("weight_bytes"),
            "macs": self._sum("macs"),
            "other_ops": self._sum("other_ops"),
            "averaging_ops": self.averaging_ops,
            "activation_peak_bytes": max(m.activation_peak_bytes for m in self.members),
            "training_bytes": self._sum("training_bytes"),
            "predicted_ms": self._sum("predicted_ms"),
        }


def ensemble_figures(networks: list, *, crops: int = 1, batch: int = 1, dtype: str = "fp32",
                     device: Optional[str] = None, optimizer: str = "sgd") -> Ensemble:
    """Per-member figures at batch x crops, and what they combine to."""
    if crops < 1:
        raise ScalelabError(f"--crops: at least 1, got {crops}")

    members = tuple(replace(network_figures(n, batch=batch * crops, dtype=dtype, device=device, optimizer=optimizer),
                            training_bytes=training_memory(n, dtype, batch, optimizer).total_bytes)
                    for n in networks)
    outputs = {n.blocks[n.output].out_shape for n in networks}
    if len(outputs) > 1:
        shapes = ", ".join(f"{n.spec.name}: {'x'.join(map(str, n.blocks[n.output].out_shape))}" for n in networks)
        raise ScalelabError(f"--ensemble: members must give outputs of one shape to be averaged; got {shapes}")

    return Ensemble(crops, batch, members, elements(next(iter(outputs))))
