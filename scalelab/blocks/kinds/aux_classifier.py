"""GoogLeNet's auxiliary classifier (Szegedy et al. 2015, §5), as torchvision builds it: average
pooling to 4x4, a 1x1 conv to 128, fc to 1024, dropout 0.7, fc to the classes. Training only."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import (
    ActivationName, Block, Channels, Norm, Pair, PositiveInt, Probability, Real, act_layer, channels_of,
    conv_norm_act,
)
from scalelab.blocks.layers import AdaptiveAvgPool, Dropout, Flatten, Linear, Node, Shape, seq


class AuxClassifierBlock(Block):
    summary = "auxiliary classifier head (GoogLeNet); training only unless said otherwise"
    kind: Literal["aux_classifier"] = "aux_classifier"
    training_only: bool = True
    pool: Pair = Field((4, 4), description="adaptive average pooling output size")
    conv: Channels = 128
    hidden: PositiveInt = 1024
    classes: PositiveInt = 1000
    dropout: Probability = 0.7
    norm: Norm = "batchnorm"
    norm_eps: Real = Field(1e-5, gt=0)
    activation: ActivationName = "relu"

    def layers(self, inp: Shape) -> Node:
        in_ch = channels_of(inp, self.kind)
        return seq(
            AdaptiveAvgPool(self.pool),
            conv_norm_act(in_ch, self.conv, norm=self.norm, norm_eps=self.norm_eps, activation=self.activation),
            Flatten(),
            Linear(self.conv * self.pool[0] * self.pool[1], self.hidden),
            act_layer(self.activation),
            Dropout(self.dropout),
            Linear(self.hidden, self.classes),
        )
