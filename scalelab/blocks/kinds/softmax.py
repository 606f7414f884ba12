"""Softmax (or log-softmax) along one per-sample axis."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Shape, Softmax
from scalelab.blocks.tensor_fields import Dim


class SoftmaxBlock(Block):
    summary = "softmax along one axis (log: log-softmax)"
    takes_defaults = False
    kind: Literal["softmax"] = "softmax"
    dim: Dim = Field(-1, description="the per-sample axis it normalises (-1: the last)")
    log: bool = Field(False, description="log-softmax")

    def layers(self, inp: Shape) -> Node:
        return Softmax(self.dim, self.log)
