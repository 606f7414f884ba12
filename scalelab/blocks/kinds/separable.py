"""Depthwise-separable convolution (MobileNet v1, Howard et al. 2017): a depthwise kxk conv, then a
pointwise 1x1 conv. Cost ratio to a full conv: 1/out + 1/k^2 (§3.1)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, NormActArgs, Padding, Pair, Real, channels_of, conv_norm_act,
    resolve_padding,
)
from scalelab.blocks.layers import Node, Shape, seq


class SeparableBlock(Block):
    summary = "depthwise-separable conv: depthwise kxk + pointwise 1x1, each with norm + activation"
    kind: Literal["separable"] = "separable"
    out: Channels = Field(description="output channels of the pointwise conv")
    kernel: Pair = (3, 3)
    stride: Pair = (1, 1)
    padding: Padding = "same"
    norm: Norm = "batchnorm"
    norm_eps: Real = Field(1e-5, gt=0)
    activation: ActivationName = "relu"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        common = NormActArgs(norm=self.norm, norm_eps=self.norm_eps, activation=self.activation)
        return seq(
            conv_norm_act(in_ch, in_ch, self.kernel, self.stride, groups=in_ch,
                          padding=resolve_padding(self.padding, self.kernel), **common),
            conv_norm_act(in_ch, self.out, **common),
        )
