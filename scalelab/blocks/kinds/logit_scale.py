"""Cosine attention's learned temperature (Swin V2): exp of a parameter clamped to a maximum; a
*source*, taking no input."""

import math
from typing import Annotated, ClassVar, Literal, Optional, Self

from pydantic import Field, Strict, model_validator

from scalelab.blocks.base import Block
from scalelab.blocks.kinds.position_bias import Size, one_axis_in_line
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers.cosine_attention import LogitScale


class LogitScaleBlock(Block):
    summary = "cosine attention's learned temperature: exp of a parameter clamped to a maximum (Swin V2: log 100)"
    takes_defaults = False
    arity: ClassVar[Optional[int]] = 0
    kind: Literal["logit_scale"] = "logit_scale"
    shape: list[Size] = Field(min_length=1, max_length=16,
                              description="the parameter as the scores read it (Swin V2: heads, 1, 1)")
    max: float = Field(math.log(100.0), allow_inf_nan=False, description="the clamp's maximum before the exp")
    batch_axis: Optional[Annotated[int, Strict(), Field(ge=0)]] = Field(
        None, description="an axis of size 1 in 'shape' that lines up with the batch (left out per sample)")

    @model_validator(mode="after")
    def _batch_axis_is_one(self) -> Self:
        one_axis_in_line(self.shape, self.batch_axis)
        return self

    def layers(self, inp: Shape) -> Node:
        return LogitScale(tuple(self.shape), self.max, self.batch_axis)
