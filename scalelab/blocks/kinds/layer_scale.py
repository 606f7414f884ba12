"""A learned scale per channel of a residual branch (CaiT, Touvron et al. 2021; ConvNeXt; DeiT III):
on the channels of a (C, H, W) map, or on the last axis (the features of tokens, timm's
``LayerScale``: ``x * gamma``)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, Real, channels_of
from scalelab.blocks.layers import LayerScale, Node, Shape, ShapeError, TrailingLayerScale, fmt_shape


class LayerScaleBlock(Block):
    summary = "learned per-channel scale of a residual branch (CaiT, ConvNeXt), channels first or last"
    takes_defaults = False
    kind: Literal["layer_scale"] = "layer_scale"
    init: Real = Field(1e-6, description="initial value of every scale (training only)")
    layout: Literal["channels_first", "channels_last"] = Field(
        "channels_first", description="scale the channels of a (C, H, W) map, or the last axis (token features)")

    def layers(self, inp: Shape) -> Node:
        if self.layout == "channels_last":
            if not inp:
                raise ShapeError(f"layer_scale with layout: channels_last needs an axis to scale, got "
                                 f"{fmt_shape(inp) or 'a scalar'}")
            return TrailingLayerScale(inp[-1], self.init)
        return LayerScale(channels_of(inp, self.kind), self.init)
