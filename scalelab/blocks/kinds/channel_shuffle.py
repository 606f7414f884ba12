"""Channel shuffle (ShuffleNetV2, Ma et al. 2018) as a block of its own; with ``channel_split``,
``from:`` and ``concat`` it writes any split-transform-merge pattern. ``shuffle_unit`` is the
ShuffleNetV2 unit written once."""

from typing import Literal

from scalelab.blocks.base import Block, PositiveInt
from scalelab.blocks.layers import ChannelShuffle, Node, Shape


class ChannelShuffleBlock(Block):
    summary = "channel shuffle: channels as groups x (c / groups), transposed (ShuffleNet)"
    takes_defaults = False
    kind: Literal["channel_shuffle"] = "channel_shuffle"
    groups: PositiveInt = 2

    def layers(self, inp: Shape) -> Node:
        return ChannelShuffle(self.groups)
