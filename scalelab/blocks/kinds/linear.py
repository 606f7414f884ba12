from typing import Literal

from pydantic import Field

from scalelab.blocks.base import ActivationName, Block, PositiveInt, act_layer
from scalelab.blocks.layers import Flatten, Linear, Node, Shape, seq


class LinearBlock(Block):
    """Fully connected layer; a feature map is flattened first."""

    summary = "fully connected layer (flattens a feature map first) + optional activation"
    takes_defaults = False  # a classifier's activation is never the network default
    kind: Literal["linear"] = "linear"
    out: PositiveInt = Field(description="output features")
    bias: bool = True
    activation: ActivationName = "none"

    def layers(self, inp: Shape) -> Node:
        flat = Flatten() if len(inp) != 1 else None
        features = inp[0] if flat is None else Flatten().out_shape(inp)[0]
        return seq(flat, Linear(features, self.out, self.bias), act_layer(self.activation))
