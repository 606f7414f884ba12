from typing import Literal, Optional

from pydantic import Field

from scalelab.blocks.base import ActivationFunction, Block, Channels, PositiveInt, Real, channels_of
from scalelab.blocks.layers import Node, Shape
from scalelab.blocks.se_options import SEGate, SEOptions, squeeze_excite

__all__ = ["SqueezeExciteBlock", "squeeze_excite"]


class SqueezeExciteBlock(Block):
    summary = "squeeze-and-excitation: channel gating from a global descriptor"
    kind: Literal["squeeze_excite"] = "squeeze_excite"
    ratio: Real = Field(0.25, gt=0, le=1, description="squeeze width as a fraction of `of`")
    squeeze: Optional[Channels] = Field(None, description="squeeze width; overrides ratio")
    of: Literal["input", "expanded"] = Field(
        "expanded", description="inside a wrap body, 'input' is the wrap's input channels; "
                                "elsewhere both are the channels this block gates")
    divisor: PositiveInt = Field(1, description="round the width as torchvision's _make_divisible")
    activation: ActivationFunction = "relu"
    gate: SEGate = "sigmoid"

    def layers(self, inp: Shape, block_input: Optional[int] = None) -> Node:
        """``block_input``: the input channels of the enclosing block (a wrap passes its own)."""
        channels = channels_of(inp, self.kind)
        if self.squeeze:
            squeeze = self.squeeze
        else:
            base = block_input if self.of == "input" and block_input is not None else channels
            squeeze = SEOptions(ratio=self.ratio, divisor=self.divisor).width(base, base)
        return squeeze_excite(channels, squeeze, self.activation, self.gate)
