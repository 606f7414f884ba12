"""A copy to contiguous memory: where torch copies a permuted or expanded tensor (before a view)."""

from typing import Literal

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Contiguous, Node, Shape


class ContiguousBlock(Block):
    summary = "a copy to contiguous memory (torch's copy of a permuted tensor before a reshape)"
    takes_defaults = False
    kind: Literal["contiguous"] = "contiguous"

    def layers(self, inp: Shape) -> Node:
        return Contiguous()
