"""``torch.split`` as a block: consecutive pieces of an axis, views of the input, named
``<block>.0``, ``<block>.1``, ... in ``from:``."""

from typing import Annotated, ClassVar, Literal

from pydantic import Field, Strict

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers.plumbing import Split
from scalelab.limits import MAX_ELEMENTS

Size = Annotated[int, Strict(), Field(gt=0, le=MAX_ELEMENTS)]


class SplitBlock(Block):
    summary = "pieces of one axis as torch.split cuts them (views); outputs named block.0, block.1, ..."
    takes_defaults = False
    several_outputs: ClassVar[bool] = True
    kind: Literal["split"] = "split"
    dim: Annotated[int, Strict()] = Field(description="the per-sample axis (0-based; negative from the end)")
    sizes: list[Size] = Field(min_length=1, max_length=4096, description="the length of each piece, in order")

    def layers(self, inp: Shape) -> Node:
        return Split(self.dim, tuple(self.sizes))
