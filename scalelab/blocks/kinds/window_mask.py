"""The attention mask of shifted windows (Swin): 0 between tokens of one region of the cyclically
shifted map, a fill across regions, recomputed from the window, the grid and the shift; a *source*,
taking no input."""

from typing import Annotated, ClassVar, Literal, Optional, Self

from pydantic import Field, Strict, model_validator

from scalelab.blocks.base import Block
from scalelab.blocks.kinds.position_bias import one_axis_in_line
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers.positions import WindowMask
from scalelab.limits import MAX_ELEMENTS

Size = Annotated[int, Strict(), Field(gt=0, le=MAX_ELEMENTS)]
Side = Annotated[int, Strict(), Field(gt=0, le=1024)]


class WindowMaskBlock(Block):
    summary = "the mask of shifted windows: 0 within a region of the shifted map, a fill across regions"
    takes_defaults = False
    arity: ClassVar[Optional[int]] = 0
    kind: Literal["window_mask"] = "window_mask"
    window: list[Side] = Field(min_length=2, max_length=2, description="the window's rows and columns of tokens")
    grid: list[Side] = Field(min_length=2, max_length=2, description="windows down and across the map")
    shift: list[Annotated[int, Strict(), Field(ge=1, le=1024)]] = Field(
        min_length=2, max_length=2, description="the cyclic shift of the map, rows and columns (less than the window)")
    shape: list[Size] = Field(max_length=16, description="the mask (windows, N, N) as the scores read it, "
                                                         "axes of size 1 added where it broadcasts")
    batch_axis: Optional[Annotated[int, Strict(), Field(ge=0)]] = Field(
        None, description="an axis of size 1 in 'shape' that lines up with the batch (left out per sample)")
    fill: float = Field(-100.0, description="the mask's value across regions")
    cached: bool = Field(False, description="built once with the module (a buffer), not on every pass")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        one_axis_in_line(self.shape, self.batch_axis)
        if any(s >= w for s, w in zip(self.shift, self.window)):
            raise ValueError(f"shift {self.shift} must be less than the window {self.window} on each side")
        return self

    def layers(self, inp: Shape) -> Node:
        return WindowMask((self.window[0], self.window[1]), (self.grid[0], self.grid[1]),
                          (self.shift[0], self.shift[1]), tuple(self.shape), self.batch_axis, self.fill, self.cached)
