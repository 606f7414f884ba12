"""Padding of the trailing per-sample axes (``torch.nn.functional.pad``)."""

from typing import Literal, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import Block, Real
from scalelab.blocks.layers import Node, Pad, Shape
from scalelab.blocks.tensor_fields import MAX_RANK, Index


class PadBlock(Block):
    summary = "padding of the trailing axes: constant, reflect, replicate, circular (torch's pad order)"
    takes_defaults = False
    kind: Literal["pad"] = "pad"
    pad: list[Index] = Field(min_length=2, max_length=2 * MAX_RANK,
                             description="(before, after) of the last axis, then of the one before, ...; "
                                         "constant: negative crops")
    mode: Literal["constant", "reflect", "replicate", "circular"] = "constant"
    value: Real = Field(0.0, description="constant: the fill value")

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if len(self.pad) % 2:
            raise ValueError(f"pad takes a (before, after) pair per axis; {len(self.pad)} values is no whole pair")
        if "value" in self.model_fields_set and self.mode != "constant":
            raise ValueError(f"value fills constant padding; {self.mode} padding takes none")
        return self

    def layers(self, inp: Shape) -> Node:
        return Pad(tuple(self.pad), self.mode, self.value)
