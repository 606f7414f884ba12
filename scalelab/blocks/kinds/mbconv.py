"""Inverted residual with linear bottleneck (MobileNet v2, Sandler et al. 2018), its squeeze-excite
form MBConv (EfficientNet, Tan & Le 2019; MobileNetV3, Howard et al. 2019), and the parameters it
shares with Fused-MBConv (EfficientNetV2, Tan & Le 2021)."""

from typing import Literal, Optional, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, NormArgs, Pair, PositiveInt, Probability, Real, channels_of,
    conv_norm_act,
)
from scalelab.blocks.layers import Dropout, Gate, Node, Residual, Shape, seq
from scalelab.blocks.se_options import SE, SEGate, se_layers


class InvertedResidualKind(Block):
    """Parameters and assembly shared by mbconv and fused_mbconv."""

    out: Channels = Field(description="output channels")
    expand: Real = Field(6, ge=1, description="expansion ratio; expanded width = round(in * expand)")
    hidden: Optional[Channels] = Field(None, json_schema_extra={"scale": "width"}, description="expanded width in channels; instead of expand")
    kernel: Pair = (3, 3)
    stride: PositiveInt = 1
    se: SE = 0.0
    se_gate: SEGate = "sigmoid"
    skip: bool = Field(True, description="identity shortcut when stride is 1 and channels match")
    drop_path: Probability = Field(0.0, description="stochastic depth rate of the residual branch (training only)")
    norm: Norm = "batchnorm"
    norm_eps: Real = Field(1e-5, gt=0)
    activation: ActivationName = "relu6"

    @model_validator(mode="after")
    def _one_expansion(self) -> Self:
        if self.hidden is not None and "expand" in self.model_fields_set:
            raise ValueError("give the expansion as expand (a ratio) or as hidden (channels), not both")
        return self

    def hidden_of(self, in_ch: int) -> int:
        return self.hidden if self.hidden is not None else int(round(in_ch * self.expand))

    def se_of(self, in_ch: int, hidden: int) -> Optional[Gate]:
        return se_layers(self.se, in_ch, hidden, self.activation, self.se_gate)

    def join(self, body: Node, in_ch: int) -> Node:
        if self.skip and self.stride == 1 and in_ch == self.out:
            return Residual(seq(body, Dropout(self.drop_path, stochastic_depth=True) if self.drop_path else None))
        return body


class MBConvBlock(InvertedResidualKind):
    summary = "inverted residual / MBConv: 1x1 expand, depthwise kxk, squeeze-excite, linear 1x1 project"
    kind: Literal["mbconv"] = "mbconv"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        hidden = self.hidden_of(in_ch)
        common = NormArgs(norm=self.norm, norm_eps=self.norm_eps)
        body = seq(
            conv_norm_act(in_ch, hidden, activation=self.activation, **common) if hidden != in_ch else None,
            conv_norm_act(hidden, hidden, self.kernel, (self.stride, self.stride), groups=hidden,
                          activation=self.activation, **common),
            self.se_of(in_ch, hidden),
            conv_norm_act(hidden, self.out, activation="none", **common),  # linear bottleneck
        )
        return self.join(body, in_ch)
