"""Resizing of the spatial axes of (channels, *spatial): ``torch.nn.functional.interpolate``,
``nn.Upsample``."""

from typing import Annotated, Literal, Optional, Self, Union

from pydantic import Field, model_validator

from scalelab.blocks.base import Block, Pixels, Real
from scalelab.blocks.layers import Interpolate, Node, Shape

Factor = Annotated[Real, Field(gt=0, le=2**16)]


class InterpolateBlock(Block):
    summary = "resizing of the spatial axes: nearest, nearest-exact, linear, bilinear, bicubic (Upsample)"
    takes_defaults = False
    kind: Literal["interpolate"] = "interpolate"
    size: Optional[Union[Pixels, list[Pixels]]] = Field(None, description="output size: one for every axis, or one each")
    scale_factor: Optional[Union[Factor, list[Factor]]] = Field(
        None, description="output size = floor(size x factor): one for every axis, or one each")
    mode: Literal["nearest", "nearest-exact", "linear", "bilinear", "bicubic"] = "nearest"
    align_corners: Optional[bool] = Field(None, description="linear, bilinear, bicubic (default false)")

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.size is None) == (self.scale_factor is None):
            raise ValueError("interpolate takes size or scale_factor, one of the two")
        if self.align_corners is not None and self.mode.startswith("nearest"):
            raise ValueError(f"align_corners applies to linear, bilinear and bicubic, not {self.mode}")
        for name, value in (("size", self.size), ("scale_factor", self.scale_factor)):
            if isinstance(value, list) and not 1 <= len(value) <= 3:
                raise ValueError(f"{name} takes one value or one per spatial axis (1 to 3), got {len(value)}")
        return self

    def layers(self, inp: Shape) -> Node:
        def many(v: "float | list | None") -> "tuple | None":
            return None if v is None else tuple(v) if isinstance(v, list) else (v,)

        return Interpolate(self.mode, many(self.size), many(self.scale_factor), self.align_corners)
