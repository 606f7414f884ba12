"""The bottleneck residual block of He et al. 2016 (1x1 reduce, 3x3, 1x1 expand), with
ResNeXt groups (Xie et al. 2017) and the choice of where the stride sits."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, PositiveInt, act_layer, channels_of, conv_norm_act, norm_layer,
)
from scalelab.blocks.layers import Node, Shape, seq
from scalelab.blocks.residual import SHORTCUT_HELP, Shortcut, assemble, shortcut_layers


class BottleneckBlock(Block):
    summary = "bottleneck residual block: 1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand, shortcut"
    kind: Literal["bottleneck"] = "bottleneck"
    out: Channels = Field(description="output channels")
    mid: Channels = Field(description="width of the 3x3 conv")
    stride: PositiveInt = 1
    stride_on: Literal["conv3x3", "conv1x1"] = Field(
        "conv3x3", description="conv3x3 is ResNet v1.5 (torchvision); conv1x1 is the original paper"
    )
    groups: PositiveInt = Field(1, description="groups of the 3x3 conv (ResNeXt cardinality)")
    shortcut: Shortcut = Field("B", description=SHORTCUT_HELP)
    preact: bool = Field(False, description="pre-activation ordering: norm, activation, conv")
    norm: Norm = "batchnorm"
    norm_eps: float = Field(1e-5, gt=0)
    activation: ActivationName = "relu"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        s = (self.stride, self.stride)
        s1, s3 = ((1, 1), s) if self.stride_on == "conv3x3" else (s, (1, 1))
        # pre-activation: each conv is preceded by norm + activation instead of followed by them
        pre = self.preact
        pieces = [
            (in_ch, self.mid, (1, 1), s1, 1),
            (self.mid, self.mid, (3, 3), s3, self.groups),
            (self.mid, self.out, (1, 1), (1, 1), 1),
        ]
        convs = []
        for i, (cin, cout, k, st, g) in enumerate(pieces):
            last = i == len(pieces) - 1
            if pre:
                convs.append(seq(norm_layer(self.norm, cin, self.norm_eps), act_layer(self.activation)))
                convs.append(conv_norm_act(cin, cout, k, st, groups=g, norm="none", activation="none", bias=False))
            else:
                convs.append(conv_norm_act(cin, cout, k, st, groups=g, norm=self.norm, norm_eps=self.norm_eps,
                                           activation="none" if last else self.activation))
        shortcut = shortcut_layers(self.shortcut, in_ch, self.out, self.stride, self.norm, self.norm_eps, pre)
        return assemble(seq(*convs), shortcut, self.shortcut, pre, self.activation)
