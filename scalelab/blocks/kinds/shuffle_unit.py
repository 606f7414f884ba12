"""The ShuffleNetV2 unit (Ma et al. 2018, Fig. 3c and 3d), as torchvision builds it. Stride 1:
split the channels in two halves, keep the first, pass the second through 1x1, depthwise 3x3 and 1x1
convs, concatenate, shuffle. Stride 2: no split; a depthwise 3x3/2 and a 1x1 on one branch, the
1x1-depthwise-1x1 branch on the other, each to half the output channels; concatenate, shuffle."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, NormArgs, PositiveInt, Real, channels_of, conv_norm_act,
)
from scalelab.blocks.layers import Node, Parallel, Shape, ShapeError, seq
from scalelab.blocks.layers import ChannelShuffle, ChannelSlice, chunks


class ShuffleUnitBlock(Block):
    summary = "ShuffleNetV2 unit: channel split, 1x1-dw3x3-1x1 branch, concat, channel shuffle"
    kind: Literal["shuffle_unit"] = "shuffle_unit"
    out: Channels = Field(description="output channels (even: two halves)")
    stride: PositiveInt = 1
    norm: Norm = "batchnorm"
    norm_eps: Real = Field(1e-5, gt=0)
    activation: ActivationName = "relu"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        if self.out % 2:
            raise ShapeError(f"a shuffle unit's output is two halves: out must be even, got {self.out}")
        half, s = self.out // 2, (self.stride, self.stride)
        common = NormArgs(norm=self.norm, norm_eps=self.norm_eps)

        def branch(cin: int, stride: tuple[int, int]) -> Node:
            return seq(conv_norm_act(cin, half, activation=self.activation, **common),
                       conv_norm_act(half, half, (3, 3), stride, groups=half, activation="none", **common),
                       conv_norm_act(half, half, activation=self.activation, **common))

        if self.stride == 1:
            if in_ch != self.out:
                raise ShapeError(f"a stride-1 shuffle unit keeps its channels: input {in_ch}, out {self.out}")
            first, second = chunks(in_ch, 2)
            split = Parallel((ChannelSlice(*first), seq(ChannelSlice(*second), branch(half, s))))
        else:
            shortcut = seq(conv_norm_act(in_ch, in_ch, (3, 3), s, groups=in_ch, activation="none", **common),
                           conv_norm_act(in_ch, half, activation=self.activation, **common))
            split = Parallel((shortcut, branch(in_ch, s)))
        return seq(split, ChannelShuffle(2))
