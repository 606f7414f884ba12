"""Scaled dot-product attention of three inputs, ``from: [q, k, v]``, as torch's math kernel runs it."""

from typing import Literal, Optional

from pydantic import Field, PositiveFloat

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Attention, Node, Shape, ShapeError


class AttentionBlock(Block):
    summary = ("scaled dot-product attention softmax(q k^T * scale) v of three inputs (from: [q, k, v]), "
               "the math kernel")
    arity = None
    takes_defaults = False
    kind: Literal["attention"] = "attention"
    causal: bool = Field(False, description="query i attends to keys 0..i (torch's is_causal)")
    scale: Optional[PositiveFloat] = Field(None, description="the scores' factor (default: 1/sqrt(E))")

    def layers(self, inp: list[Shape]) -> Node:  # type: ignore[override]  # a merge (arity None) gets its inputs' shapes
        if len(inp) != 3:
            raise ShapeError(f"attention takes three inputs (q, k, v), got {len(inp)}")
        return Attention(self.causal, self.scale)
