"""A strided range of one per-sample axis, with Python's rules (a view, ``x[:, start:stop:step]``)."""

from typing import Literal, Optional

from pydantic import Field

from scalelab.blocks.base import Block, PositiveInt
from scalelab.blocks.layers import Node, Shape, Slice
from scalelab.blocks.tensor_fields import Dim, Index


class SliceBlock(Block):
    summary = "start:stop:step of one axis, as Python slices (a view)"
    takes_defaults = False
    kind: Literal["slice"] = "slice"
    dim: Dim = Field(description="the per-sample axis it slices")
    start: Optional[Index] = Field(None, description="first index (negative: from the end); default the start")
    stop: Optional[Index] = Field(None, description="index past the last (clipped to the axis); default the end")
    step: PositiveInt = 1

    def layers(self, inp: Shape) -> Node:
        return Slice(self.dim, self.start, self.stop, self.step)
