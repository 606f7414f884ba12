"""The matrix product of two inputs, ``from: [a, b]`` is ``a @ b`` (torch.matmul on per-sample shapes)."""

from typing import Literal

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Matmul, Node, Shape, ShapeError


class MatmulBlock(Block):
    summary = "matrix product a @ b of two inputs (from: [a, b]) as torch.matmul, leading axes broadcast"
    arity = None
    takes_defaults = False
    kind: Literal["matmul"] = "matmul"

    def layers(self, inp: list[Shape]) -> Node:  # type: ignore[override]  # a merge (arity None) gets its inputs' shapes
        if len(inp) != 2:
            raise ShapeError(f"matmul takes two inputs (a @ b), got {len(inp)}")
        return Matmul()
