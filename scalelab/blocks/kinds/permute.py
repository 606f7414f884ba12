"""The per-sample axes in a new order (a view, torch's ``permute``)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Permute, Shape
from scalelab.blocks.tensor_fields import Dims


class PermuteBlock(Block):
    summary = "the per-sample axes in a new order (a view)"
    takes_defaults = False
    kind: Literal["permute"] = "permute"
    dims: Dims = Field(description="output axis i is input axis dims[i]; each axis once")

    def layers(self, inp: Shape) -> Node:
        return Permute(tuple(self.dims))
