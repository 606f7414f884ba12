from typing import Literal

from scalelab.blocks.base import Block
from scalelab.blocks.layers import AdaptiveAvgPool, Node, Shape


class GlobalAvgPoolBlock(Block):
    summary = "global average pooling to channels x 1 x 1"
    takes_defaults = False
    kind: Literal["global_avgpool"] = "global_avgpool"

    def layers(self, inp: Shape) -> Node:
        return AdaptiveAvgPool((1, 1))
