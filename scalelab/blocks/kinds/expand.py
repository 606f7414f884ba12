"""Size-1 axes repeated without copying (a view, torch's ``expand``)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Expand, Node, Shape
from scalelab.blocks.tensor_fields import TargetShape


class ExpandBlock(Block):
    summary = "size-1 axes repeated to a per-sample shape without copying (a view)"
    takes_defaults = False
    kind: Literal["expand"] = "expand"
    shape: TargetShape = Field(description="per-sample sizes; -1 keeps an axis, new axes come first")

    def layers(self, inp: Shape) -> Node:
        return Expand(tuple(self.shape))
