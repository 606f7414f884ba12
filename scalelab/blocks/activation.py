from typing import Literal

from pydantic import Field

from scalelab.blocks.base import ActivationFunction, Block
from scalelab.blocks.layers import Activation, Node, Shape


class ActivationBlock(Block):
    summary = "activation function"
    takes_defaults = False
    kind: Literal["activation"] = "activation"
    function: ActivationFunction = Field(description="relu, relu6, sigmoid, tanh, silu (swish), hardsigmoid, hardswish")

    def layers(self, inp: Shape) -> Node:
        return Activation(self.function)
