from typing import Literal, Optional, Self

from pydantic import Field, model_validator

from scalelab.blocks.base import ActivationName, Block, Channels, Real, act_layer, channels_of
from scalelab.blocks.layers import Node, Shape, seq
from scalelab.blocks.layers import ChannelLinear


class ChannelLinearBlock(Block):
    """A linear layer over the channels at every position: the count of a 1x1 conv with bias, the
    tensors of a linear layer (ConvNeXt's pointwise MLP, written channels-last)."""

    summary = "linear layer over the channels of every position (ConvNeXt's MLP) + activation"
    kind: Literal["channel_linear"] = "channel_linear"
    out: Optional[Channels] = Field(None, json_schema_extra={"scale": "width"}, description="output channels")
    expand: Optional[Real] = Field(None, gt=0, description="output channels as a ratio of the input's; instead of out")
    bias: bool = True
    activation: ActivationName = "none"

    @model_validator(mode="after")
    def _one_width(self) -> Self:
        if (self.out is None) == (self.expand is None):
            raise ValueError("give the output width as out (channels) or as expand (a ratio), one of them")
        return self

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        out = self.out if self.out is not None else int(round(in_ch * self.expand))  # type: ignore[operator]  # _one_width: no out, an expand
        return seq(ChannelLinear(in_ch, max(1, out), self.bias), act_layer(self.activation))
