"""An element-wise operation on one input, with a scalar or clamp bounds where it takes them."""

from typing import TYPE_CHECKING, Literal, Optional, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import Block, Real
from scalelab.blocks.layers import Node, Shape, Unary
from scalelab.blocks.layers.elementwise import SCALAR, UNARY_OPS

if TYPE_CHECKING:  # the literal is built from the operations' table at run time: to a type checker, a name
    UnaryOp = str
else:
    UnaryOp = Literal[UNARY_OPS]


class UnaryBlock(Block):
    summary = "element-wise operation on one input: neg, exp, sqrt, erf, ..., x op scalar, clamp"
    takes_defaults = False
    kind: Literal["unary"] = "unary"
    op: UnaryOp = Field(description=", ".join(UNARY_OPS) + f"; {', '.join(SCALAR)} take scalar (rsub: scalar - x, "
                        "rdiv: scalar / x)")
    scalar: Optional[Real] = Field(None, description="the second operand of the scalar operations")
    min: Optional[Real] = Field(None, description="clamp's lower bound")
    max: Optional[Real] = Field(None, description="clamp's upper bound")

    @model_validator(mode="after")
    def _operands_fit(self) -> Self:
        if self.op in SCALAR and self.scalar is None:
            raise ValueError(f"unary '{self.op}' needs scalar (x {self.op} scalar)")
        if self.op not in SCALAR and self.scalar is not None:
            raise ValueError(f"unary '{self.op}' takes no scalar; {', '.join(SCALAR)} do")
        if self.op != "clamp" and (self.min is not None or self.max is not None):
            raise ValueError(f"min and max are clamp's bounds; unary '{self.op}' takes neither")
        if self.op == "clamp" and self.min is None and self.max is None:
            raise ValueError("clamp needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"clamp's min {self.min} is above its max {self.max}")
        return self

    def layers(self, inp: Shape) -> Node:
        return Unary(self.op, self.scalar, self.min, self.max)
