"""Each primitive layer of a block's layer tree, in execution order, with its input and output.

``walk`` (scalelab.blocks.layers) sums a tree into costs; some reports need more than the sum:
which primitive produced a cost, on what input, and what flows along the wiring (for training
compute, whether autograd tracks a tensor). ``trace`` visits the tree the way torch runs it and
calls ``step(layer, inputs)`` for every primitive and every join; the costs themselves still come
from ``walk`` on the single layer, so no formula is written twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

from scalelab.blocks import layers as L
from scalelab.blocks.layers import LayerCost, Shape

V = TypeVar("V")

#: the join of a squeeze-and-excitation gate, y = x * g (``L.Gate`` has no primitive for it)
GATE_MUL = L.Merge("mul")

#: step(layer, inputs) -> output value; ``layer`` is a primitive, an add/concat ``Merge`` or ``GATE_MUL``
Step = Callable[[object, list], V]


def trace(node: L.Node, x: "V | list[V]", step: Step) -> V:
    """Run ``step`` over ``node`` as torch would execute it, starting from the value ``x``."""
    if isinstance(node, L.Merge):
        return step(node, list(x))  # type: ignore[arg-type]
    if isinstance(node, L.Sequence):
        for item in node.items:
            x = trace(item, x, step)
        return x  # type: ignore[return-value]
    if isinstance(node, L.Residual):
        body = trace(node.body, x, step)
        short = trace(node.shortcut, x, step) if node.shortcut is not None else x
        out = step(L.Merge("add"), [body, short])
        return trace(node.post, out, step) if node.post is not None else out
    if isinstance(node, L.Parallel):
        return step(L.Merge("concat"), [trace(b, x, step) for b in node.branches])
    if isinstance(node, L.Gate):
        return step(GATE_MUL, [x, trace(node.body, x, step)])
    return step(node, [x])


@dataclass(frozen=True)
class Traced:
    """One primitive (or join) of a block, with the shapes it saw and its cost from ``walk``."""

    layer: object
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    cost: LayerCost


def layer_cost(layer: object, shapes: list[Shape]) -> tuple[Shape, LayerCost]:
    """Output shape and cost of one primitive or join, by ``walk`` (the single source of formulas)."""
    if layer is GATE_MUL:
        # the gate's own cost is the last record of walking a gate (its body here only fixes the shape)
        x = shapes[0]
        return x, L.walk(L.Gate(L.AdaptiveAvgPool((1, 1))), x).costs[-1]
    result = L.walk(layer, shapes if isinstance(layer, L.Merge) else shapes[0])  # type: ignore[arg-type]
    return result.out, result.costs[0]


def traced_layers(node: L.Node, shape: "Shape | list[Shape]") -> list[Traced]:
    """Every primitive and join of ``node`` on input ``shape``, in execution order."""
    seen: list[Traced] = []

    def step(layer, shapes):
        out, cost = layer_cost(layer, shapes)
        seen.append(Traced(layer, tuple(shapes), out, cost))
        return out

    trace(node, shape, step)
    return seen
