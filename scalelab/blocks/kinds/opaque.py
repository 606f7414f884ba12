"""An operation of unknown cost, kept in place so the graph and the shapes stay whole (written by
``scalelab import --allow-unsupported`` for operations no other kind states). Its parameters are
known and counted; its MACs and other ops are unknown, and every report says so."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, PositiveInt
from scalelab.blocks.layers import Node, Opaque, Shape


class OpaqueBlock(Block):
    summary = "an operation of unknown cost (shape and parameters given), from import --allow-unsupported"
    takes_defaults = False
    kind: Literal["opaque"] = "opaque"
    op: str = Field(description="the operation it stands for, e.g. torch.nn.LayerNorm")
    shape: list[PositiveInt] = Field(min_length=1, description="output shape per sample")
    params: int = Field(0, ge=0, description="parameters it holds")

    def layers(self, inp: "Shape | list[Shape]") -> Node:
        return Opaque(self.op, tuple(self.shape), self.params)
