from typing import Literal, Optional, Self

from pydantic import Field, StrictInt, model_validator

from scalelab.blocks.base import AnyActivationFunction, Block, Real
from scalelab.blocks.layers import FUNCTIONS, Activation, Node, PReLU, Shape, ShapeError, activation_arguments

#: the parameter fields, as torch's modules name them (``per_channel`` stands for PReLU's num_parameters)
PARAMETERS = ("negative_slope", "alpha", "approximate", "min_val", "max_val", "beta", "threshold", "value",
              "lambd", "lower", "upper", "dim", "init")


class ActivationBlock(Block):
    """An activation function with its parameters; a parameter not given takes torch's default."""

    summary = "activation function (its parameters as torch names them: negative_slope, alpha, ...)"
    takes_defaults = False
    kind: Literal["activation"] = "activation"
    function: AnyActivationFunction = Field(description=", ".join(FUNCTIONS) + " (silu also as swish)")
    negative_slope: Optional[Real] = Field(None, description="leaky_relu (default 0.01)")
    alpha: Optional[Real] = Field(None, description="elu, celu (default 1)")
    approximate: Optional[Literal["none", "tanh"]] = Field(None, description="gelu (default none)")
    min_val: Optional[Real] = Field(None, description="hardtanh (default -1)")
    max_val: Optional[Real] = Field(None, description="hardtanh (default 1)")
    beta: Optional[Real] = Field(None, description="softplus (default 1)")
    threshold: Optional[Real] = Field(None, description="softplus (default 20), threshold (required)")
    value: Optional[Real] = Field(None, description="threshold: the value below it (required)")
    lambd: Optional[Real] = Field(None, ge=0, description="hardshrink, softshrink (default 0.5)")
    lower: Optional[Real] = Field(None, description="rrelu (default 1/8)")
    upper: Optional[Real] = Field(None, description="rrelu (default 1/3)")
    dim: Optional[StrictInt] = Field(None, description="glu: the per-sample axis it halves (default -1)")
    init: Optional[Real] = Field(None, description="prelu: the slopes' first value (default 0.25)")
    per_channel: bool = Field(False, description="prelu: one slope per channel (the first axis), not one")

    @model_validator(mode="after")
    def _parameters_fit(self) -> Self:
        activation_arguments(self.function, self._given())  # a ValueError naming a stray or missing one
        if self.per_channel and self.function != "prelu":
            raise ValueError(f"per_channel is prelu's, not {self.function}'s")
        return self

    def _given(self) -> dict[str, "float | str"]:
        values = {k: getattr(self, k) for k in PARAMETERS}
        return {k: v for k, v in values.items() if v is not None}

    def layers(self, inp: Shape) -> Node:
        if self.function != "prelu":
            return Activation(self.function, tuple(self._given().items()))
        if self.per_channel and not inp:
            raise ShapeError("a per-channel prelu needs an input with channels")
        init = dict(activation_arguments("prelu", self._given()))["init"]  # torch's default when not given
        return PReLU(inp[0] if self.per_channel else 1, float(init))
