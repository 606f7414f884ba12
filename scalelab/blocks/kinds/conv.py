from typing import Literal, Optional, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, Padding, Pair, PositiveInt, Real, channels_of, conv_norm_act,
    resolve_padding,
)
from scalelab.blocks.group_width import GroupWidth, group_width_field, groups_for
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers.conv import WeightStd


class WeightStandardization(BaseModel):
    """The weight normalised per output channel before each pass (timm's StdConv2d; with ``gain``,
    ScaledStdConv2d: times a learned gain per output channel and gamma / sqrt(fan-in))."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    eps: Real = Field(1e-6, gt=0, description="added to each filter's variance")
    gain: bool = Field(False, description="a learned gain per output channel (counted as parameters)")
    gamma: Real = Field(1.0, description="with gain: the weight is scaled by gain * gamma / sqrt(fan-in)")


class ConvBlock(Block):
    """Convolution, optional batchnorm, optional activation."""

    summary = "convolution (groups, depthwise, dilation, padding modes) + norm + activation"
    kind: Literal["conv"] = "conv"
    out: Optional[Channels] = Field(None, json_schema_extra={"scale": "width"}, description="output channels (required; a depthwise conv's default: its input channels)")
    kernel: Pair = (3, 3)
    stride: Pair = (1, 1)
    padding: Padding = "same"
    dilation: Pair = (1, 1)
    groups: PositiveInt = Field(1, json_schema_extra={"divides": ["out", "input"]})  # width rounding keeps both divisible
    group_width: GroupWidth = group_width_field("out", "input")
    depthwise: bool = Field(False, description="one group per input channel (groups = input channels)")
    bias: bool | None = Field(None, description="default: a bias only when no norm follows")
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
    norm: Norm = "batchnorm"
    norm_eps: Real = Field(1e-5, gt=0)
    activation: ActivationName = "relu"
    weight_standardization: Optional[WeightStandardization] = Field(
        None, description="standardise the weight before each pass: {eps, gain, gamma} (NFNet, BiT)")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.group_width is not None and (self.depthwise or "groups" in self.model_fields_set):
            raise ValueError("give one of groups, group_width and depthwise")
        if self.out is None and not self.depthwise:
            raise ValueError("missing required field 'out' (output channels)")
        return self

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        groups = in_ch if self.depthwise else groups_for(in_ch, self.groups, self.group_width)
        ws = self.weight_standardization
        return conv_norm_act(
            in_ch,
            in_ch if self.out is None else self.out,
            self.kernel,
            self.stride,
            groups=groups,
            norm=self.norm,
            activation=self.activation,
            norm_eps=self.norm_eps,
            padding=resolve_padding(self.padding, self.kernel, self.dilation),
            dilation=self.dilation,
            bias=self.bias,
            padding_mode=self.padding_mode,
            standardize=WeightStd(ws.eps, ws.gain, ws.gamma) if ws else None,
        )
