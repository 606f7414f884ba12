from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, Real, channels_of
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers import LayerNorm


class LayerNormBlock(Block):
    summary = "layer normalisation over the channels of each position (ConvNeXt's LayerNorm2d)"
    kind: Literal["layer_norm"] = "layer_norm"
    norm_eps: Real = Field(1e-5, gt=0)

    def layers(self, inp: Shape) -> Node:
        return LayerNorm(channels_of(inp, self.kind), self.norm_eps)
