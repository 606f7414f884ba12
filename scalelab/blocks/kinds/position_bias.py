"""A relative position bias (Swin, MaxViT): a learned table gathered by the relative position index of
a window, which the block recomputes from the window; a *source*, taking no input."""

from typing import Annotated, ClassVar, Literal, Optional, Self

from pydantic import Field, Strict, model_validator

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers.positions import PositionBias
from scalelab.limits import MAX_ELEMENTS

Size = Annotated[int, Strict(), Field(gt=0, le=MAX_ELEMENTS)]
Side = Annotated[int, Strict(), Field(gt=0, le=1024)]


def one_axis_in_line(shape: list[int], batch_axis: Optional[int]) -> None:
    """A source's batch_axis names an axis of size 1 of its shape."""
    if batch_axis is not None and (batch_axis >= len(shape) or shape[batch_axis] != 1):
        raise ValueError(f"batch_axis {batch_axis} must name an axis of size 1 in shape {shape}")


class PositionBiasBlock(Block):
    summary = "a relative position bias of a window: a learned table gathered by the window's relative index"
    takes_defaults = False
    arity: ClassVar[Optional[int]] = 0
    kind: Literal["position_bias"] = "position_bias"
    window: list[Side] = Field(min_length=2, max_length=2, description="the window's rows and columns of tokens")
    heads: Size = Field(description="attention heads: one bias per head")
    shape: list[Size] = Field(max_length=16, description="the bias (heads, N, N) as the scores read it, "
                                                         "axes of size 1 added where it broadcasts")
    batch_axis: Optional[Annotated[int, Strict(), Field(ge=0)]] = Field(
        None, description="an axis of size 1 in 'shape' that lines up with the batch (left out per sample)")
    offsets: Literal["signed", "absolute"] = Field(
        "signed", description="signed: a (2 rows - 1)(2 cols - 1) x heads table (Swin, MaxViT); "
                              "absolute: a heads x rows cols table of distances (LeViT, EfficientFormer)")
    cached: bool = Field(False, description="gathered on the first eval pass and kept (EfficientFormer's and LeViT's "
                                            "attention_bias_cache): no gather on the passes after it")

    @model_validator(mode="after")
    def _batch_axis_is_one(self) -> Self:
        one_axis_in_line(self.shape, self.batch_axis)
        return self

    def layers(self, inp: Shape) -> Node:
        return PositionBias((self.window[0], self.window[1]), self.heads, tuple(self.shape), self.batch_axis,
                            self.offsets, self.cached)
