"""One index of a per-sample axis, the axis removed (a view, ``x[:, i]``)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Select, Shape
from scalelab.blocks.tensor_fields import Dim, Index


class SelectBlock(Block):
    summary = "one index of an axis, which goes away (a view)"
    takes_defaults = False
    kind: Literal["select"] = "select"
    dim: Dim = Field(description="the per-sample axis")
    index: Index = Field(description="the index along it (negative: from the end)")

    def layers(self, inp: Shape) -> Node:
        return Select(self.dim, self.index)
