from typing import Literal, Optional, Self, Union

from pydantic import Field, model_validator

from scalelab.blocks.base import (
    ActivationName, Block, Channels, PadPixels, Pixels, PositiveInt, Real, act_layer,
)
from scalelab.blocks.layers import BatchNorm, Conv, Node, Shape, ShapeError, fmt_shape, seq


class Conv1dBlock(Block):
    """Convolution along the length of a (channels, length) input (torch's Conv1d; ECA's channel
    conv), optional batchnorm, optional activation: the ``conv`` kind's fields, one size each."""

    summary = "1-d convolution on (channels, length) (groups, dilation, padding modes) + norm + activation"
    kind: Literal["conv1d"] = "conv1d"
    out: Optional[Channels] = Field(None, json_schema_extra={"scale": "width"},
                                    description="output channels (required; a depthwise conv's default: its input channels)")
    kernel: Pixels = 3
    stride: Pixels = 1
    padding: Union[Literal["same", "valid"], PadPixels] = Field(
        "same", description="'same' (half the dilated kernel each side), 'valid' (none), or elements per side")
    dilation: Pixels = 1
    groups: PositiveInt = Field(1, json_schema_extra={"divides": ["out", "input"]})
    depthwise: bool = Field(False, description="one group per input channel (groups = input channels)")
    bias: Optional[bool] = Field(None, description="default: a bias only when no norm follows")
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
    norm: Literal["batchnorm", "none"] = "batchnorm"
    norm_eps: Real = Field(1e-5, gt=0)
    activation: ActivationName = "relu"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.depthwise and "groups" in self.model_fields_set:
            raise ValueError("give one of groups and depthwise")
        if self.out is None and not self.depthwise:
            raise ValueError("missing required field 'out' (output channels)")
        return self

    def layers(self, inp: Shape) -> Node:
        if len(inp) != 2:
            raise ShapeError(f"conv1d needs a (channels, length) input, got {fmt_shape(inp)}")
        in_ch = inp[0]
        out = in_ch if self.out is None else self.out
        groups = in_ch if self.depthwise else self.groups
        if in_ch % groups or out % groups:
            raise ShapeError(f"groups={groups} must divide both {in_ch} input and {out} output channels")
        pad = {"same": self.dilation * (self.kernel - 1) // 2, "valid": 0}.get(self.padding, self.padding)  # type: ignore[arg-type]  # an int when not a word
        bias = self.norm == "none" if self.bias is None else self.bias
        conv = Conv(in_ch, out, (self.kernel,), (self.stride,), (int(pad),), (self.dilation,), groups, bias,
                    self.padding_mode)
        norm = BatchNorm(out, self.norm_eps) if self.norm == "batchnorm" else None
        return seq(conv, norm, act_layer(self.activation))
