from typing import Literal, Optional

from pydantic import Field

from scalelab.blocks.base import ActivationFunction, Block, Channels, channels_of
from scalelab.blocks.layers import AdaptiveAvgPool, Activation, Conv, Gate, Node, Shape, seq


def squeeze_excite(channels: int, squeeze: int, activation: str, gate: str) -> Gate:
    """Squeeze-and-excitation (Hu et al. 2018): global pool, 1x1 conv down to ``squeeze``,
    activation, 1x1 conv back up, gate, then scale the input channel-wise."""
    return Gate(
        seq(
            AdaptiveAvgPool((1, 1)),
            Conv(channels, squeeze, (1, 1), bias=True),
            Activation(activation),
            Conv(squeeze, channels, (1, 1), bias=True),
            Activation(gate),
        )
    )


class SqueezeExciteBlock(Block):
    summary = "squeeze-and-excitation: channel gating from a global descriptor"
    kind: Literal["squeeze_excite"] = "squeeze_excite"
    ratio: float = Field(0.25, gt=0, le=1, description="squeeze width as a fraction of the channels")
    squeeze: Optional[Channels] = Field(None, description="squeeze width; overrides ratio")
    activation: ActivationFunction = "relu"
    gate: Literal["sigmoid", "hardsigmoid"] = "sigmoid"

    def layers(self, inp: Shape) -> Node:
        channels = channels_of(inp, self.kind)
        squeeze = self.squeeze or max(1, int(channels * self.ratio))
        return squeeze_excite(channels, squeeze, self.activation, self.gate)
