"""Two or more inputs of one shape stacked along a new per-sample axis (``torch.stack``)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Shape, Stack
from scalelab.blocks.tensor_fields import Dim


class StackBlock(Block):
    summary = "two or more inputs of one shape (from:) stacked along a new axis"
    arity = None
    takes_defaults = False
    kind: Literal["stack"] = "stack"
    dim: Dim = Field(0, description="where the new per-sample axis goes")

    def layers(self, inp: list[Shape]) -> Node:  # type: ignore[override]  # a merge (arity None) gets its inputs' shapes
        return Stack(self.dim)
