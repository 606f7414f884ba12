"""A layer tree walked as one training step runs it: which tensors autograd records ops on.

A tensor needs a gradient when its input did or when the layer that made it has trained weights
(the network input needs none). Wiring nodes call back ``run``, ``joined`` (add, cat: the result
needs a gradient if any input does) and ``product`` (a gate's multiply); each primitive goes to
``primitive``, which the consumers (training memory, training compute) extend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scalelab.blocks.layers import definition, elements


@dataclass(eq=False)
class Storage:
    elems: int
    saved: bool = False  # already kept for backward by some layer


@dataclass(eq=False)
class Tensor:
    shape: tuple
    grad: bool  # whether autograd records the ops on it
    storage: Storage = field(default=None)  # type: ignore[assignment]

    def __post_init__(self):
        if self.storage is None:
            self.storage = Storage(elements(self.shape))


class TrainWalk:
    def __init__(self, trainable: bool):
        self.trainable = trainable  # the block's weights are trained

    def run(self, node, x: "Tensor | list[Tensor]") -> Tensor:
        return definition(node).train(self, x)

    def joined(self, shape: tuple, inputs: list[Tensor]) -> Tensor:
        return Tensor(shape, any(t.grad for t in inputs))

    def product(self, x: Tensor, g: Tensor) -> Tensor:
        if x.grad or g.grad:
            self.keep(x)
            self.keep(g)
        return Tensor(x.shape, x.grad or g.grad)

    def keep(self, t: Tensor) -> None:
        """Autograd keeps ``t`` for backward (nothing to do unless memory is counted)."""

    def primitive(self, node, x: Tensor) -> Tensor:
        out_shape = node.out_shape(x.shape)
        trained = node.has_weights and self.trainable
        return self.layer(node, x, out_shape, trained)

    def layer(self, node, x: Tensor, out_shape: tuple, trained: bool) -> Tensor:
        return Tensor(out_shape, x.grad or trained)
