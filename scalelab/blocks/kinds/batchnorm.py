from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, Real
from scalelab.blocks.layers import BatchNorm, Node, Shape


class BatchNormBlock(Block):
    summary = "batch normalisation"
    kind: Literal["batchnorm"] = "batchnorm"
    norm_eps: Real = Field(1e-5, gt=0)

    def layers(self, inp: Shape) -> Node:
        return BatchNorm(inp[0], self.norm_eps)
