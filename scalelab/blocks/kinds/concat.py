from typing import Literal

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Merge, Node, Shape


class ConcatBlock(Block):
    summary = "concatenation of two or more inputs along channels (name them with from:)"
    arity = None
    takes_defaults = False
    kind: Literal["concat"] = "concat"

    def layers(self, inp: list[Shape]) -> Node:  # type: ignore[override]  # a merge (arity None) gets its inputs' shapes
        return Merge("concat")
