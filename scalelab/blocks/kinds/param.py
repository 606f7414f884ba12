"""A learned tensor as a block of its own: a *source*, taking no input (ViT's class token and position
embedding, a scale used by an element-wise product). ``trainable: false`` makes it a buffer."""

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import Field, Strict, model_validator

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.layers.plumbing import Param
from scalelab.limits import MAX_ELEMENTS

Size = Annotated[int, Strict(), Field(gt=0, le=MAX_ELEMENTS)]


class ParamBlock(Block):
    summary = "a learned tensor (or a buffer), the same for every sample; takes no input"
    takes_defaults = False
    arity: ClassVar[Optional[int]] = 0
    kind: Literal["param"] = "param"
    shape: list[Size] = Field(max_length=16, description="the tensor's shape as the module holds it")
    trainable: bool = Field(True, description="a parameter (true) or a buffer (false: no parameters, no gradient)")
    batch_axis: Optional[Annotated[int, Strict(), Field(ge=0)]] = Field(
        None, description="an axis of size 1 in 'shape' that lines up with the batch (left out per sample)")

    @model_validator(mode="after")
    def _batch_axis_is_one(self) -> "ParamBlock":
        axis = self.batch_axis
        if axis is not None and (axis >= len(self.shape) or self.shape[axis] != 1):
            raise ValueError(f"batch_axis {axis} must name an axis of size 1 in shape {self.shape}")
        return self

    def layers(self, inp: Shape) -> Node:
        return Param(tuple(self.shape), self.trainable, self.batch_axis)
