from typing import Literal, Optional

from pydantic import Field

from scalelab.blocks.base import ActivationName, Block, PositiveInt, act_layer
from scalelab.blocks.layers import Flatten, Linear, Node, Shape, seq


class LinearBlock(Block):
    """Fully connected layer over the last axis of its input (torch's nn.Linear), every leading axis
    kept: (features,) -> (out,), (tokens, features) -> (tokens, out). A (channels, height, width)
    feature map is flattened to a vector first unless ``flatten: false`` says otherwise."""

    summary = "fully connected layer over the last axis (flattens a feature map first) + optional activation"
    takes_defaults = False  # a classifier's activation is never the network default
    kind: Literal["linear"] = "linear"
    out: PositiveInt = Field(description="output features")
    bias: bool = True
    flatten: Optional[bool] = Field(None, description="flatten the input to a vector first; default: only a "
                                                      "(channels, height, width) feature map")
    activation: ActivationName = "none"

    def layers(self, inp: Shape) -> Node:
        flatten = len(inp) == 3 if self.flatten is None else self.flatten
        flat = Flatten() if flatten and len(inp) > 1 else None
        shape = inp if flat is None else flat.out_shape(inp)
        return seq(flat, Linear(shape[-1], self.out, self.bias), act_layer(self.activation))
