from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, PositiveInt, Real
from scalelab.blocks.layers import GroupNorm, Node, Shape, ShapeError


class GroupNormBlock(Block):
    """torch's GroupNorm over an input of any rank, channels first."""

    summary = "group normalisation: the channels in groups, each over its channels and every other axis"
    kind: Literal["group_norm"] = "group_norm"
    groups: PositiveInt = Field(json_schema_extra={"divides": ["input"]}, description="groups of channels")
    norm_eps: Real = Field(1e-5, gt=0)
    affine: bool = Field(True, description="a learned scale and shift per channel")

    def layers(self, inp: Shape) -> Node:
        if not inp:
            raise ShapeError("group norm needs an input with channels")
        return GroupNorm(self.groups, inp[0], self.norm_eps, self.affine)
