from typing import Literal

from pydantic import Field

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, Padding, Pair, PositiveInt, channels_of, conv_norm_act, resolve_padding,
)
from scalelab.blocks.layers import Node, Shape


class ConvBlock(Block):
    """Convolution, optional batchnorm, optional activation."""

    summary = "convolution (groups, depthwise, dilation, padding modes) + norm + activation"
    kind: Literal["conv"] = "conv"
    out: Channels = Field(description="output channels")
    kernel: Pair = (3, 3)
    stride: Pair = (1, 1)
    padding: Padding = "same"
    dilation: Pair = (1, 1)
    groups: PositiveInt = Field(1, json_schema_extra={"divides": ["out", "input"]})  # width rounding keeps both divisible
    depthwise: bool = Field(False, description="one group per input channel (groups = input channels)")
    bias: bool | None = Field(None, description="default: a bias only when no norm follows")
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
    norm: Norm = "batchnorm"
    norm_eps: float = Field(1e-5, gt=0)
    activation: ActivationName = "relu"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        return conv_norm_act(
            in_ch,
            self.out,
            self.kernel,
            self.stride,
            groups=in_ch if self.depthwise else self.groups,
            norm=self.norm,
            activation=self.activation,
            norm_eps=self.norm_eps,
            padding=resolve_padding(self.padding, self.kernel, self.dilation),
            dilation=self.dilation,
            bias=self.bias,
            padding_mode=self.padding_mode,
        )
