from typing import Literal

from scalelab.blocks.base import WindowPool
from scalelab.blocks.layers import Node, Shape


class AvgPoolBlock(WindowPool):
    summary = "average pooling"
    kind: Literal["avgpool"] = "avgpool"
    count_include_pad: bool = True

    def layers(self, inp: Shape) -> Node:
        return self._pool("avg", count_include_pad=self.count_include_pad)
