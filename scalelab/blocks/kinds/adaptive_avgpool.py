from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, Pair
from scalelab.blocks.layers import AdaptiveAvgPool, Node, Shape


class AdaptiveAvgPoolBlock(Block):
    summary = "average pooling to a fixed output size"
    takes_defaults = False
    kind: Literal["adaptive_avgpool"] = "adaptive_avgpool"
    size: Pair = Field(description="output height and width")

    def layers(self, inp: Shape) -> Node:
        return AdaptiveAvgPool(self.size)
