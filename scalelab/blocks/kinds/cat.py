"""Two or more inputs concatenated along any per-sample axis (``torch.cat``); the zoo's ``concat``
joins channels."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Cat, Node, Shape
from scalelab.blocks.tensor_fields import Dim


class CatBlock(Block):
    summary = "concatenation of two or more inputs (from:) along any axis"
    arity = None
    takes_defaults = False
    kind: Literal["cat"] = "cat"
    dim: Dim = Field(0, description="the per-sample axis they are joined along")

    def layers(self, inp: list[Shape]) -> Node:  # type: ignore[override]  # a merge (arity None) gets its inputs' shapes
        return Cat(self.dim)
