"""Inverted residual with linear bottleneck (MobileNet v2, Sandler et al. 2018) and its
squeeze-excite form MBConv (EfficientNet, Tan & Le 2019)."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, Pair, PositiveInt, Probability, channels_of, conv_norm_act,
)
from scalelab.blocks.layers import Dropout, Node, Residual, Shape, seq
from scalelab.blocks.squeeze_excite import squeeze_excite


class MBConvBlock(Block):
    summary = "inverted residual / MBConv: 1x1 expand, depthwise kxk, squeeze-excite, linear 1x1 project"
    kind: Literal["mbconv"] = "mbconv"
    out: Channels = Field(description="output channels")
    expand: float = Field(6, ge=1, description="expansion ratio; expanded width = round(in * expand)")
    kernel: Pair = (3, 3)
    stride: PositiveInt = 1
    se: float = Field(0.0, ge=0, le=1, description="squeeze-excite width as a fraction of the block's input channels; 0 = none")
    se_gate: Literal["sigmoid", "hardsigmoid"] = "sigmoid"
    skip: bool = Field(True, description="identity shortcut when stride is 1 and channels match")
    drop_path: Probability = Field(0.0, description="stochastic depth rate of the residual branch (training only)")
    norm: Norm = "batchnorm"
    norm_eps: float = Field(1e-5, gt=0)
    activation: ActivationName = "relu6"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        hidden = int(round(in_ch * self.expand))
        common = dict(norm=self.norm, norm_eps=self.norm_eps)
        body = seq(
            conv_norm_act(in_ch, hidden, activation=self.activation, **common) if hidden != in_ch else None,
            conv_norm_act(hidden, hidden, self.kernel, (self.stride, self.stride), groups=hidden,
                          activation=self.activation, **common),
            squeeze_excite(hidden, max(1, int(in_ch * self.se)), self.activation, self.se_gate) if self.se else None,
            conv_norm_act(hidden, self.out, activation="none", **common),  # linear bottleneck
        )
        if self.skip and self.stride == 1 and in_ch == self.out:
            return Residual(seq(body, Dropout(self.drop_path, stochastic_depth=True) if self.drop_path else None))
        return body
