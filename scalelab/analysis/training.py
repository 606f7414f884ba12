"""Training compute per block and in total, as ``analyze --mode train`` reports it: the per-layer
figures of ``scalelab.analysis.train_compute`` (each layer's ``train_macs`` face) summed per block.

  * forward: every block, training-only heads included (they run in training);
  * backward: input gradients (only where the layer's input needs one: some trained layer lies
    upstream) and weight gradients (only for trained layers); so frozen layers compute no weight
    gradients, and below the first trained layer no input gradients either.

Other ops (norm, activation, pooling, add) are counted for the forward pass as at inference; their
backward is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from scalelab.analysis.train_compute import training_compute as per_layer
from scalelab.analysis.train_walk import frozen_prefix
from scalelab.graph import Network

RULE = ("training step = forward + backward; backward = input gradients (computed for a layer whose input needs "
        "one: a trained layer lies upstream) + weight gradients (computed for trained layers); frozen layers compute "
        "no weight gradients, and below the first trained layer no input gradients either")


@dataclass(frozen=True)
class BlockCompute:
    name: str
    trainable: bool
    forward_macs: int
    input_grad_macs: int
    weight_grad_macs: int
    forward_ops: int

    @property
    def backward_macs(self) -> int:
        return self.input_grad_macs + self.weight_grad_macs

    @property
    def total_macs(self) -> int:
        return self.forward_macs + self.backward_macs


@dataclass(frozen=True)
class TrainingCompute:
    batch: int
    freeze_until: Optional[str]
    blocks: dict[str, BlockCompute]

    def _sum(self, attr: str) -> int:
        return sum(getattr(b, attr) for b in self.blocks.values())

    forward_macs = property(lambda self: self._sum("forward_macs"))
    input_grad_macs = property(lambda self: self._sum("input_grad_macs"))
    weight_grad_macs = property(lambda self: self._sum("weight_grad_macs"))
    backward_macs = property(lambda self: self._sum("backward_macs"))
    total_macs = property(lambda self: self._sum("total_macs"))
    forward_ops = property(lambda self: self._sum("forward_ops"))

    def trained_macs(self) -> int:
        """Forward and backward of the trained blocks only (what training on cached features runs)."""
        return sum(b.total_macs for b in self.blocks.values() if b.trainable)

    def as_dict(self) -> dict:
        return {
            "unit": "multiply-accumulates per batch", "batch": self.batch, "freeze_until": self.freeze_until,
            "rule": RULE, "forward_macs": self.forward_macs, "backward_macs": self.backward_macs,
            "input_grad_macs": self.input_grad_macs, "weight_grad_macs": self.weight_grad_macs,
            "total_macs": self.total_macs, "forward_other_ops": self.forward_ops,
            "blocks": [{"name": b.name, "trainable": b.trainable, "forward_macs": b.forward_macs,
                        "input_grad_macs": b.input_grad_macs, "weight_grad_macs": b.weight_grad_macs,
                        "backward_macs": b.backward_macs, "total_macs": b.total_macs} for b in self.blocks.values()],
        }


def training_compute(network: Network, batch: int = 1, freeze_until: Optional[str] = None) -> TrainingCompute:
    """Per-block MACs of one training step of ``batch`` samples, frozen through ``freeze_until``."""
    frozen = frozen_prefix(network, freeze_until)
    layers = per_layer(network, batch, frozen)
    return TrainingCompute(batch, freeze_until, {
        b.name: BlockCompute(b.name, b.name not in frozen, layers.forward_macs(b.name), layers.grad_input_macs(b.name),
                             layers.grad_weight_macs(b.name), batch * sum(c.ops for c in b.costs))
        for b in network.blocks.values()})
