from typing import Literal

from scalelab.blocks.base import Block, Probability
from scalelab.blocks.layers import Dropout, Node, Shape


class DropoutBlock(Block):
    summary = "dropout (identity at inference)"
    takes_defaults = False
    kind: Literal["dropout"] = "dropout"
    p: Probability = 0.5

    def layers(self, inp: Shape) -> Node:
        return Dropout(self.p)
