"""The data flow of a layer tree: which layers each layer reads, in the order ``walk`` gives the cost
rows (sequence in order; residual: body, shortcut, the add, post; parallel: the branches, the
concatenation; gate: its body, then the product). Exactness compares it between a region and the
block proposed for it, so that equal layers wired otherwise never fold."""

from __future__ import annotations

from scalelab.blocks.layers import Gate, Merge, Param, Parallel, Residual, Sequence, Unpack, Wiring

#: the input of a region and of the block proposed for it
IN = "in"
#: a layer's every output piece, in order (an unbind's q, k and v), as one read
ALL_PIECES = ".*"


class Unwired(ValueError):
    """A wiring node whose data flow this module does not follow."""


class Flow:
    """The layers met so far, each with the ids of the layers (or inputs) it reads; a layer's id is
    its place in that list."""

    def __init__(self) -> None:
        self.reads: list[list[str]] = []

    def _layer(self, inputs: list[str]) -> str:
        self.reads.append(list(inputs))
        return str(len(self.reads) - 1)

    def run(self, node, inputs: list[str]) -> str:
        """The id of the output of ``node`` on ``inputs``, its layers recorded in walk's order."""
        if node is None:
            return inputs[0]
        if isinstance(node, Sequence):
            for item in node.items:  # a leading merge takes every input, the rest the previous output
                inputs = [self.run(item, inputs)]
            return inputs[0]
        if isinstance(node, Residual):
            body = self.run(node.body, inputs)
            short = self.run(node.shortcut, inputs)
            return self.run(node.post, [self._layer([body, short])])
        if isinstance(node, Parallel):
            return self._layer([self.run(b, inputs) for b in node.branches])
        if isinstance(node, Gate):
            return self._layer([inputs[0], self.run(node.body, inputs)])
        if isinstance(node, Param):  # a learned tensor reads nothing (a class token, a position embedding)
            return self._layer([])
        if isinstance(node, Unpack):  # the join reads the split's pieces, all of them in order
            return self.run(node.join, [self.run(node.split, inputs) + ALL_PIECES])
        if isinstance(node, Merge):
            return self._layer(inputs)
        if isinstance(node, Wiring):
            raise Unwired(type(node).__name__)
        return self._layer(inputs)


def reads_alike(label: str, a: list[str], b: list[str]) -> bool:
    """Whether a layer reads ``a`` as another reads ``b``: in order, except for a sum or a product."""
    return sorted(a) == sorted(b) if label in ("add", "mul") else a == b
