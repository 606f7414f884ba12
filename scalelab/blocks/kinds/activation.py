from typing import Literal

from pydantic import Field

from scalelab.blocks.base import ActivationFunction, Block
from scalelab.blocks.layers import ACTIVATIONS, Activation, Node, Shape


class ActivationBlock(Block):
    summary = "activation function"
    takes_defaults = False
    kind: Literal["activation"] = "activation"
    function: ActivationFunction = Field(description=", ".join(ACTIVATIONS) + " (silu also as swish)")

    def layers(self, inp: Shape) -> Node:
        return Activation(self.function)
