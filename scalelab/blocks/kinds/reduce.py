"""A reduction over per-sample axes: sum, mean, amax, amin, p-norm, variance, standard deviation."""

from typing import TYPE_CHECKING, Literal, Self, Union

from pydantic import Field, model_validator

from scalelab.blocks.base import Block, Real
from scalelab.blocks.layers import Node, Reduce, Shape
from scalelab.blocks.layers.reduction import REDUCTIONS
from scalelab.blocks.tensor_fields import Dims

if TYPE_CHECKING:  # the literal is built from the reductions' table at run time: to a type checker, a name
    Reduction = str
else:
    Reduction = Literal[tuple(REDUCTIONS)]


class ReduceBlock(Block):
    summary = "reduction over axes: mean, sum, amax, amin, norm (p), var, std (correction)"
    takes_defaults = False
    kind: Literal["reduce"] = "reduce"
    op: Reduction = Field(description=", ".join(REDUCTIONS))
    dims: Dims = Field(description="the per-sample axes it reduces (0: the first after the batch)")
    keepdim: bool = Field(False, description="keep each reduced axis with size 1")
    p: Union[Real, Literal["inf", "-inf"]] = Field(2.0, description="norm: the order (inf: the largest magnitude)")
    correction: Real = Field(1.0, ge=0, description="var, std: divide by n - correction (1: Bessel's)")

    @model_validator(mode="after")
    def _options_fit(self) -> Self:
        if "p" in self.model_fields_set and self.op != "norm":
            raise ValueError(f"p is norm's order; reduce '{self.op}' takes none")
        if "correction" in self.model_fields_set and self.op not in ("var", "std"):
            raise ValueError(f"correction is var's and std's; reduce '{self.op}' takes none")
        return self

    def layers(self, inp: Shape) -> Node:
        p = float(self.p)  # "inf" and "-inf" as floats: torch's orders of the largest and smallest magnitude
        return Reduce(self.op, tuple(self.dims), self.keepdim, p, self.correction)
