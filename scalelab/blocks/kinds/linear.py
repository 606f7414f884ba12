from typing import Literal, Optional, Self

from pydantic import Field, model_validator

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
    bias_zeroed: Optional[list[int]] = Field(None, min_length=2, max_length=2,
                                             description="[start, stop]: a slice of the bias zeroed on every "
                                                         "pass (Swin V2's qkv: the keys')")
    activation: ActivationName = "none"

    @model_validator(mode="after")
    def _zeroed_inside_the_bias(self) -> Self:
        if self.bias_zeroed is not None:
            start, stop = self.bias_zeroed
            if not self.bias or not 0 <= start < stop <= self.out:
                raise ValueError(f"bias_zeroed {self.bias_zeroed} must be a slice of the bias of {self.out} features")
        return self

    def layers(self, inp: Shape) -> Node:
        flatten = len(inp) == 3 if self.flatten is None else self.flatten
        flat = Flatten() if flatten and len(inp) > 1 else None
        shape = inp if flat is None else flat.out_shape(inp)
        zeroed = (self.bias_zeroed[0], self.bias_zeroed[1]) if self.bias_zeroed else None
        return seq(flat, Linear(shape[-1], self.out, self.bias, zeroed), act_layer(self.activation))
