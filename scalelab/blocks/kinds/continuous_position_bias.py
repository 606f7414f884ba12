"""Swin Transformer V2's continuous position bias: an MLP over a window's log-spaced relative
coordinates, gathered by the window's relative index, 16 sigmoid; a *source*, taking no input."""

from typing import Annotated, ClassVar, Literal, Optional, Self

from pydantic import Field, Strict, model_validator

from scalelab.blocks.base import Block
from scalelab.blocks.kinds.position_bias import Size, one_axis_in_line
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers.cosine_attention import ContinuousPositionBias

#: a side of one token has no relative offsets to normalise (the table divides by side - 1)
Side = Annotated[int, Strict(), Field(ge=2, le=1024)]


class ContinuousPositionBiasBlock(Block):
    summary = ("Swin V2's continuous position bias of a window: an MLP over log-spaced relative coordinates, "
               "gathered by the window's relative index, 16 sigmoid")
    takes_defaults = False
    arity: ClassVar[Optional[int]] = 0
    kind: Literal["continuous_position_bias"] = "continuous_position_bias"
    window: list[Side] = Field(min_length=2, max_length=2, description="the window's rows and columns of tokens")
    heads: Size = Field(description="attention heads: one bias per head")
    hidden: Size = Field(512, description="the MLP's hidden features")
    shape: list[Size] = Field(max_length=16, description="the bias (heads, N, N) as the scores read it, "
                                                         "axes of size 1 added where it broadcasts")
    batch_axis: Optional[Annotated[int, Strict(), Field(ge=0)]] = Field(
        None, description="an axis of size 1 in 'shape' that lines up with the batch (left out per sample)")

    @model_validator(mode="after")
    def _batch_axis_is_one(self) -> Self:
        one_axis_in_line(self.shape, self.batch_axis)
        return self

    def layers(self, inp: Shape) -> Node:
        return ContinuousPositionBias((self.window[0], self.window[1]), self.heads, self.hidden, tuple(self.shape),
                                      self.batch_axis)
