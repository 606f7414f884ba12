"""Training compute: the multiply-accumulates of one training step, per layer.

Each layer's ``train_macs`` face gives, per sample, its forward MACs, the MACs of the gradient of its
input and the MACs of the gradient of its weights (bias excluded, the MACs convention). A training
step runs every block (training-only heads included) forward, then backward, where:

* a layer's weight gradient is computed only when its weights are trained (``weights_trained``);
* its input gradient only when its input needs one (``input_grad_needed``): some layer before it
  has trained weights. Below the first trained layer nothing needs an input gradient; the first
  layer of a network never does (the network input needs none).

So freezing a prefix of the network removes the weight gradients of the frozen layers, and the
input gradients of every layer up to the first trained one too.

Checked exactly against torch's ``FlopCounterMode`` over a real ``loss.backward()`` (tests/
test_train_compute.py); where torch's counter overcounts (the weight gradient of a grouped
convolution, see ``Conv.train_macs``), the difference is asserted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

from scalelab.analysis.train_walk import Tensor, TrainWalk, run_network
from scalelab.blocks.layers import Primitive, Shape
from scalelab.errors import ScalelabError
from scalelab.graph.network import Network


@dataclass(frozen=True)
class LayerTraining:
    """MACs of one layer in a training step, for the whole batch; zero for a gradient not computed."""

    block: str
    label: str  # the layer's cost label (conv, linear, relu, ...)
    node: Primitive  # the layer's definition
    weights_trained: bool
    input_grad_needed: bool
    forward_macs: int
    grad_input_macs: int
    grad_weight_macs: int

    @property
    def total_macs(self) -> int:
        return self.forward_macs + self.grad_input_macs + self.grad_weight_macs


@dataclass(frozen=True)
class TrainingCompute:
    batch: int
    layers: tuple[LayerTraining, ...]

    def _sum(self, attr: str, block: "str | None" = None) -> int:
        return sum(getattr(r, attr) for r in self.layers if block is None or r.block == block)

    def forward_macs(self, block: "str | None" = None) -> int:
        return self._sum("forward_macs", block)

    def grad_input_macs(self, block: "str | None" = None) -> int:
        return self._sum("grad_input_macs", block)

    def grad_weight_macs(self, block: "str | None" = None) -> int:
        return self._sum("grad_weight_macs", block)

    def total_macs(self, block: "str | None" = None) -> int:
        return self._sum("total_macs", block)


class _ComputeWalk(TrainWalk):
    def __init__(self, block: str, trainable: bool, batch: int, rows: list[LayerTraining]) -> None:
        super().__init__(trainable)
        self.block, self.batch, self.rows = block, batch, rows

    def layer(self, node: Primitive, x: Tensor, out_shape: Shape, trained: bool) -> Tensor:
        macs = node.train_macs(x.shape, out_shape)
        self.rows.append(LayerTraining(
            self.block, node.cost(x.shape, out_shape).label, node, trained, x.grad,
            self.batch * macs.forward,
            self.batch * macs.grad_input if x.grad else 0,
            self.batch * macs.grad_weight if trained else 0,
        ))
        return super().layer(node, x, out_shape, trained)

    def several(self, node: Primitive, xs: list[Tensor], out_shape: Shape) -> Tensor:
        shapes, grads = [t.shape for t in xs], tuple(t.grad for t in xs)
        macs = node.grad_macs(shapes, grads)  # type: ignore[attr-defined]  # every primitive of several inputs has it
        self.rows.append(LayerTraining(self.block, node.cost(shapes, out_shape).label, node, False, any(grads),  # type: ignore[arg-type]
                                       self.batch * macs.forward, self.batch * macs.grad_input, 0))
        return super().several(node, xs, out_shape)


def training_compute(network: Network, batch: int = 1, frozen: Collection[str] = ()) -> TrainingCompute:
    """Per-layer MACs of one training step of ``batch`` samples, every block run in execution order
    (training-only heads included); the weights of the blocks named in ``frozen`` are not trained
    (``scalelab.analysis.train_walk.frozen_prefix`` gives the blocks up to a ``--freeze-until``)."""
    if batch < 1:
        raise ScalelabError(f"batch must be at least 1, got {batch}")
    unknown = set(frozen) - set(network.blocks)
    if unknown:
        raise ScalelabError(f"no block named {sorted(unknown)[0]!r}")
    rows: list[LayerTraining] = []
    for _ in run_network(network, set(frozen), lambda b, trainable: _ComputeWalk(b.name, trainable, batch, rows)):
        pass
    return TrainingCompute(batch, tuple(rows))
