"""The bottleneck residual block of He et al. 2016 (1x1 reduce, 3x3, 1x1 expand), with
ResNeXt groups (Xie et al. 2017) or RegNet's group width (Radosavovic et al. 2020), an optional
squeeze-excite after the 3x3 (RegNetY), and the choice of where the stride sits."""

from typing import Literal, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import Channels, PositiveInt, channels_of
from scalelab.blocks.group_width import GroupWidth, group_width_field, groups_for
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.kinds.residual import ResidualKind
from scalelab.blocks.se_options import SE, SEGate, se_layers


class BottleneckBlock(ResidualKind):
    summary = "bottleneck residual block: 1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand, shortcut"
    kind: Literal["bottleneck"] = "bottleneck"
    mid: Channels = Field(description="width of the 3x3 conv")
    stride_on: Literal["conv3x3", "conv1x1"] = Field(
        "conv3x3", description="conv3x3 is ResNet v1.5 (torchvision); conv1x1 is the original paper"
    )
    groups: PositiveInt = Field(1, description="groups of the 3x3 conv (ResNeXt cardinality)",
                                json_schema_extra={"divides": ["mid"]})  # width rounding keeps mid divisible
    group_width: GroupWidth = group_width_field("mid")
    se: SE = 0.0
    se_gate: SEGate = "sigmoid"

    @model_validator(mode="after")
    def _one_grouping(self) -> Self:
        if self.group_width is not None and "groups" in self.model_fields_set:
            raise ValueError("give groups or group_width, not both")
        return self

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        s = (self.stride, self.stride)
        s1, s3 = ((1, 1), s) if self.stride_on == "conv3x3" else (s, (1, 1))
        groups = groups_for(self.mid, self.groups, self.group_width)
        # the SE's reduce activation is the block's (RegNetY: ReLU)
        se = se_layers(self.se, in_ch, self.mid, "relu" if self.activation == "none" else self.activation, self.se_gate)
        return self.join(self.convs([
            (in_ch, self.mid, (1, 1), s1, 1),
            (self.mid, self.mid, (3, 3), s3, groups),
            (self.mid, self.out, (1, 1), (1, 1), 1),
        ], after={1: se}), in_ch)
