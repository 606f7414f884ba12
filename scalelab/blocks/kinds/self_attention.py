"""Multi-head self-attention over tokens with its layer norm and residual: the first half of a
transformer encoder block (Vaswani et al. 2017; ViT, Dosovitskiy et al. 2021), usable alone. ``qkv``
says how q, k and v are cut from the fused projection: by views (timm's ``Attention``) or, with
``packed_copy``, after a copy of the whole projection (``nn.MultiheadAttention``)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.transformer_parts import AttentionFields, TokenHalf, tokens_of


class SelfAttentionBlock(AttentionFields, TokenHalf):
    summary = "multi-head self-attention over tokens with its layer norm and residual (a transformer's first half)"
    kind: Literal["self_attention"] = "self_attention"
    residual: bool = Field(True, description="add the input back (false: the norm and attention alone)")

    def layers(self, inp: Shape) -> Node:
        _, _, dim = tokens_of(inp, self.kind)
        return self.half(self.attention(inp), dim, self.residual)
