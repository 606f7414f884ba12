"""One transformer encoder block over tokens (Vaswani et al. 2017; ViT, Dosovitskiy et al. 2021;
DeiT, Touvron et al. 2021): x + attention(norm(x)), then x + mlp(norm(x)), or post-norm
norm(x + branch(x)) for each half. A stage repeats it:
``{stage: encoder, repeat: 12, block: {kind: transformer, head_dim: 64}}``.

q, k and v are cut from the fused projection by views, as timm's ``Attention`` does; ``qkv:
packed_copy`` cuts them as torchvision's ViT (``nn.MultiheadAttention``) does, after one copy of the
whole projection (3 x tokens x features elements). ``layer_scale`` scales each branch by a learned
vector of the features, timm's ``LayerScale`` (CaiT, DeiT III)."""

from typing import Literal

from scalelab.blocks.layers import Node, Shape, seq
from scalelab.blocks.transformer_parts import AttentionFields, MlpFields, TokenHalf, tokens_of


class TransformerBlock(AttentionFields, MlpFields, TokenHalf):
    summary = "transformer encoder block: residual (norm, multi-head self-attention) + residual (norm, mlp)"
    kind: Literal["transformer"] = "transformer"

    def layers(self, inp: Shape) -> Node:
        _, _, dim = tokens_of(inp, self.kind)
        return seq(self.half(self.attention(inp), dim), self.half(self.mlp(inp), dim))
