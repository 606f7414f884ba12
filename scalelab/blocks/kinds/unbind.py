"""``torch.unbind`` as a block: one view per index of an axis, the axis removed, named
``<block>.0``, ``<block>.1``, ... in ``from:``."""

from typing import Annotated, ClassVar, Literal

from pydantic import Field, Strict

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers.plumbing import Unbind


class UnbindBlock(Block):
    summary = "one view per index of an axis, as torch.unbind gives them; outputs named block.0, block.1, ..."
    takes_defaults = False
    several_outputs: ClassVar[bool] = True
    kind: Literal["unbind"] = "unbind"
    dim: Annotated[int, Strict()] = Field(description="the per-sample axis (0-based; negative from the end)")

    def layers(self, inp: Shape) -> Node:
        return Unbind(self.dim)
