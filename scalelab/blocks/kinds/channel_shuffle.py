"""Channel split and channel shuffle (ShuffleNetV2, Ma et al. 2018), as blocks of their own; with
``from:`` and ``concat`` they write any split-transform-merge pattern. ``shuffle_unit`` is the
ShuffleNetV2 unit written once."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, PositiveInt, channels_of
from scalelab.blocks.layers import Node, Shape, ShapeError
from scalelab.blocks.layers import ChannelShuffle, ChannelSlice, chunks


class ChannelShuffleBlock(Block):
    summary = "channel shuffle: channels as groups x (c / groups), transposed (ShuffleNet)"
    takes_defaults = False
    kind: Literal["channel_shuffle"] = "channel_shuffle"
    groups: PositiveInt = 2

    def layers(self, inp: Shape) -> Node:
        return ChannelShuffle(self.groups)


class ChannelSplitBlock(Block):
    summary = "one piece of the channels split as torch.chunk does (ShuffleNetV2's split)"
    takes_defaults = False
    kind: Literal["channel_split"] = "channel_split"
    parts: PositiveInt = Field(2, description="split into this many pieces of ceil(c / parts) channels")
    take: int = Field(ge=0, description="index of the piece this block passes on")

    def layers(self, inp: Shape) -> Node:
        pieces = chunks(channels_of(inp, self.kind), self.parts)
        if self.take >= len(pieces):
            raise ShapeError(f"{inp[0]} channels split into {self.parts} give {len(pieces)} pieces; no piece {self.take}")
        return ChannelSlice(*pieces[self.take])
