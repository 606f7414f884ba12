from typing import Literal

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Flatten, Node, Shape


class FlattenBlock(Block):
    summary = "flatten a feature map to a vector"
    takes_defaults = False
    kind: Literal["flatten"] = "flatten"

    def layers(self, inp: Shape) -> Node:
        return Flatten()
