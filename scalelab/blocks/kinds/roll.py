"""Elements shifted along axes, wrapping around (a copy, ``torch.roll``)."""

from typing import Literal, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Roll, Shape
from scalelab.blocks.tensor_fields import Dims, Index


class RollBlock(Block):
    summary = "elements shifted along axes, wrapping around (a copy)"
    takes_defaults = False
    kind: Literal["roll"] = "roll"
    shifts: list[Index] = Field(min_length=1, description="one shift per axis in dims")
    dims: Dims = Field(description="the per-sample axes it rolls")

    @model_validator(mode="after")
    def _one_shift_per_axis(self) -> Self:
        if len(self.shifts) != len(self.dims):
            raise ValueError(f"roll takes one shift per axis: {len(self.shifts)} shifts for {len(self.dims)} dims")
        return self

    def layers(self, inp: Shape) -> Node:
        return Roll(tuple(self.shifts), tuple(self.dims))
