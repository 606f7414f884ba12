"""Scaled dot-product attention with an additive mask, ``from: [q, k, v, mask]``, as torch's math
kernel runs it (a relative position bias given to attention as its mask: CoAtNet, MaxViT)."""

from typing import Literal, Optional

from pydantic import Field, PositiveFloat

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Shape, ShapeError
from scalelab.blocks.layers.masked_attention import MaskedAttention


class MaskedAttentionBlock(Block):
    summary = ("scaled dot-product attention softmax(q k^T * scale + mask) v of four inputs "
               "(from: [q, k, v, mask]), the math kernel")
    arity = None
    takes_defaults = False
    kind: Literal["masked_attention"] = "masked_attention"
    scale: Optional[PositiveFloat] = Field(None, description="the scores' factor (default: 1/sqrt(E))")

    def layers(self, inp: list[Shape]) -> Node:  # type: ignore[override]  # a merge (arity None) gets its inputs' shapes
        if len(inp) != 4:
            raise ShapeError(f"masked attention takes four inputs (q, k, v, mask), got {len(inp)}")
        return MaskedAttention(False, self.scale)
