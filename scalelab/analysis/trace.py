"""Each primitive layer of a block's layer tree, in execution order, with its input and output
shapes and its cost: what ``explain`` writes out. The tree is walked by the training walk
(``scalelab.analysis.train_walk``), which visits every primitive with its input as torch runs it;
the cost is the layer's own ``cost`` face."""

from __future__ import annotations

from dataclasses import dataclass

from scalelab.analysis.train_walk import Tensor, TrainWalk
from scalelab.blocks.layers import LayerCost, Node, Primitive, Shape


@dataclass(frozen=True)
class Traced:
    layer: Primitive
    in_shape: "Shape | list[Shape]"  # a list for a primitive of several inputs (matmul, attention)
    out_shape: Shape
    cost: LayerCost


class _Recorder(TrainWalk):
    def __init__(self) -> None:
        super().__init__(trainable=False)
        self.seen: list[Traced] = []

    def layer(self, node: Primitive, x: Tensor, out_shape: Shape, trained: bool) -> Tensor:
        self.seen.append(Traced(node, x.shape, out_shape, node.cost(x.shape, out_shape)))
        return super().layer(node, x, out_shape, trained)

    def several(self, node: Primitive, xs: list[Tensor], out_shape: Shape) -> Tensor:
        shapes = [t.shape for t in xs]
        self.seen.append(Traced(node, shapes, out_shape, node.cost(shapes, out_shape)))  # type: ignore[arg-type]  # several inputs' shapes
        return super().several(node, xs, out_shape)

    def source(self, node: Primitive, trainable: bool) -> Tensor:
        out = super().source(node, trainable)
        self.seen.append(Traced(node, (), out.shape, node.cost((), out.shape)))  # a source: no input
        return out


def traced_layers(node: Node, shape: "Shape | list[Shape]") -> list[Traced]:
    """Every primitive of ``node`` on input ``shape``, in execution order (joins are not listed)."""
    recorder = _Recorder()
    recorder.run(node, [Tensor(s, False) for s in shape] if isinstance(shape, list) else Tensor(shape, False))
    return recorder.seen
