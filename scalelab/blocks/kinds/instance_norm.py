from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, Real
from scalelab.blocks.layers import InstanceNorm, Node, Shape, ShapeError


class InstanceNormBlock(Block):
    """torch's InstanceNorm1d/2d (no running statistics) on (channels, length) or (channels, height, width)."""

    summary = "instance normalisation: each channel of each sample over its other axes"
    kind: Literal["instance_norm"] = "instance_norm"
    norm_eps: Real = Field(1e-5, gt=0)
    affine: bool = Field(False, description="a learned scale and shift per channel (torch's default: none)")

    def layers(self, inp: Shape) -> Node:
        if not inp:
            raise ShapeError("instance norm needs an input with channels")
        return InstanceNorm(inp[0], self.norm_eps, self.affine)
