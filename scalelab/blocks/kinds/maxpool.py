from typing import Literal

from scalelab.blocks.base import WindowPool
from scalelab.blocks.layers import Node, Shape


class MaxPoolBlock(WindowPool):
    summary = "max pooling"
    kind: Literal["maxpool"] = "maxpool"

    def layers(self, inp: Shape) -> Node:
        return self._pool("max")
