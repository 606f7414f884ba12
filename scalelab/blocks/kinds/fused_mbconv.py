"""Fused-MBConv (EfficientNetV2, Tan & Le 2021, Fig. 2): the 1x1 expansion and the depthwise kxk of
MBConv fused into one full kxk conv, then optional squeeze-excite and a linear 1x1 projection. With
no expansion the kxk conv maps straight to the output, with its activation (torchvision's
FusedMBConv)."""

from typing import Literal

from scalelab.blocks.base import NormArgs, channels_of, conv_norm_act
from scalelab.blocks.layers import Node, Shape, seq
from scalelab.blocks.kinds.mbconv import InvertedResidualKind


class FusedMBConvBlock(InvertedResidualKind):
    summary = "fused-MBConv: full kxk expand conv, squeeze-excite, linear 1x1 project (EfficientNetV2)"
    kind: Literal["fused_mbconv"] = "fused_mbconv"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        hidden = self.hidden_of(in_ch)
        common = NormArgs(norm=self.norm, norm_eps=self.norm_eps)
        stride = (self.stride, self.stride)
        if hidden == in_ch:
            body = seq(conv_norm_act(in_ch, self.out, self.kernel, stride, activation=self.activation, **common),
                       self.se_of(in_ch, self.out))
        else:
            body = seq(
                conv_norm_act(in_ch, hidden, self.kernel, stride, activation=self.activation, **common),
                self.se_of(in_ch, hidden),
                conv_norm_act(hidden, self.out, activation="none", **common),
            )
        return self.join(body, in_ch)
