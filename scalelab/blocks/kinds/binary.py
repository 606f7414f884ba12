"""An element-wise operation on two inputs broadcast as torch broadcasts them: ``from: [a, b]`` is
``a op b``."""

from typing import TYPE_CHECKING, Literal, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import Block, Real
from scalelab.blocks.layers import Binary, Node, Shape, ShapeError
from scalelab.blocks.layers.elementwise import BINARY_OPS

if TYPE_CHECKING:  # the literal is built from the operations' table at run time: to a type checker, a name
    BinaryOp = str
else:
    BinaryOp = Literal[BINARY_OPS]


class BinaryBlock(Block):
    summary = "element-wise a op b of two inputs (from: [a, b]), broadcast as torch does: add, mul, ..."
    arity = None
    takes_defaults = False
    kind: Literal["binary"] = "binary"
    op: BinaryOp = Field(description=", ".join(BINARY_OPS))
    alpha: Real = Field(1.0, description="add and sub: a + alpha * b, a - alpha * b")

    @model_validator(mode="after")
    def _alpha_fits(self) -> Self:
        if "alpha" in self.model_fields_set and self.op not in ("add", "sub"):
            raise ValueError(f"alpha scales b in add and sub only; binary '{self.op}' takes none")
        return self

    def layers(self, inp: list[Shape]) -> Node:  # type: ignore[override]  # a merge (arity None) gets its inputs' shapes
        if len(inp) != 2:
            raise ShapeError(f"binary {self.op} takes two inputs (a {self.op} b), got {len(inp)}")
        return Binary(self.op, self.alpha)
