"""The same elements in a new per-sample shape: a view of a contiguous input (torch's ``view``)."""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from scalelab.blocks.base import Block
from scalelab.blocks.layers import Node, Reshape, Shape
from scalelab.blocks.tensor_fields import TargetShape


def _one_inferred(shape: list[int]) -> list[int]:
    if shape.count(-1) > 1:
        raise ValueError(f"shape {shape} has more than one -1; one size at most is inferred")
    return shape


class ReshapeBlock(Block):
    summary = "the same elements in a new per-sample shape (a view; after permute, put contiguous first)"
    takes_defaults = False
    kind: Literal["reshape"] = "reshape"
    shape: Annotated[TargetShape, AfterValidator(_one_inferred)] = Field(
        description="per-sample sizes; one may be -1, inferred from the others")

    def layers(self, inp: Shape) -> Node:
        return Reshape(tuple(self.shape))
