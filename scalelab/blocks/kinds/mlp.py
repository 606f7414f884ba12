"""The MLP of a transformer encoder block (linear, activation, linear) with its layer norm and
residual: the second half of a block (ViT, Dosovitskiy et al. 2021), usable alone."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.transformer_parts import MlpFields, TokenHalf, tokens_of


class MlpBlock(MlpFields, TokenHalf):
    summary = "a transformer's MLP over tokens (linear, gelu, linear) with its layer norm and residual"
    kind: Literal["mlp"] = "mlp"
    residual: bool = Field(True, description="add the input back (false: the norm and MLP alone)")

    def layers(self, inp: Shape) -> Node:
        _, _, dim = tokens_of(inp, self.kind)
        return self.half(self.mlp(inp), dim, self.residual)
