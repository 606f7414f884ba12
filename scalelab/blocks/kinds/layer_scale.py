from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, Real, channels_of
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers import LayerScale


class LayerScaleBlock(Block):
    summary = "learned per-channel scale of a residual branch (CaiT, ConvNeXt)"
    takes_defaults = False
    kind: Literal["layer_scale"] = "layer_scale"
    init: Real = Field(1e-6, description="initial value of every scale (training only)")

    def layers(self, inp: Shape) -> Node:
        return LayerScale(channels_of(inp, self.kind), self.init)
