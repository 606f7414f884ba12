from typing import Literal

from scalelab.blocks.base import ActivationName, Block, act_layer
from scalelab.blocks.layers import Merge, Node, Shape, seq


class AddBlock(Block):
    summary = "element-wise sum of two or more inputs (name them with from:), optional activation"
    arity = None
    takes_defaults = False
    kind: Literal["add"] = "add"
    activation: ActivationName = "none"

    def layers(self, inp: list[Shape]) -> Node:  # type: ignore[override]  # a merge (arity None) gets its inputs' shapes
        return seq(Merge("add"), act_layer(self.activation))
