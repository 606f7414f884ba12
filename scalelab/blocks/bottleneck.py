"""The bottleneck residual block of He et al. 2016 (1x1 reduce, 3x3, 1x1 expand), with
ResNeXt groups (Xie et al. 2017) and the choice of where the stride sits."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Channels, PositiveInt, channels_of
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.residual import ResidualKind


class BottleneckBlock(ResidualKind):
    summary = "bottleneck residual block: 1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand, shortcut"
    kind: Literal["bottleneck"] = "bottleneck"
    mid: Channels = Field(description="width of the 3x3 conv")
    stride_on: Literal["conv3x3", "conv1x1"] = Field(
        "conv3x3", description="conv3x3 is ResNet v1.5 (torchvision); conv1x1 is the original paper"
    )
    groups: PositiveInt = Field(1, description="groups of the 3x3 conv (ResNeXt cardinality)",
                                json_schema_extra={"divides": ["mid"]})  # width rounding keeps mid divisible

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        s = (self.stride, self.stride)
        s1, s3 = ((1, 1), s) if self.stride_on == "conv3x3" else (s, (1, 1))
        return self.join(self.convs([
            (in_ch, self.mid, (1, 1), s1, 1),
            (self.mid, self.mid, (3, 3), s3, self.groups),
            (self.mid, self.out, (1, 1), (1, 1), 1),
        ]), in_ch)
