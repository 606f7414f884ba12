from typing import Literal, Optional

from pydantic import Field

from scalelab.blocks.base import Block, PositiveInt, Real
from scalelab.blocks.layers import Node, RMSNorm, Shape, ShapeError


class RMSNormBlock(Block):
    """torch's RMSNorm over the last ``trailing`` axes of an input of any rank."""

    summary = "RMS normalisation over the trailing axes (a learned scale per normalised element)"
    kind: Literal["rms_norm"] = "rms_norm"
    trailing: PositiveInt = Field(1, description="how many trailing axes it normalises over (torch's normalized_shape)")
    norm_eps: Optional[Real] = Field(None, gt=0, description="default: the machine epsilon of the dtype (torch's)")
    affine: bool = Field(True, description="a learned scale per normalised element")

    def layers(self, inp: Shape) -> Node:
        if self.trailing > len(inp):
            raise ShapeError(f"rms norm over {self.trailing} trailing axes of a rank-{len(inp)} input")
        return RMSNorm(inp[len(inp) - self.trailing:], self.norm_eps, self.affine)
