"""Channel split (ShuffleNetV2, Ma et al. 2018) as a block of its own: one piece of the channels,
cut as ``torch.chunk`` cuts them; with ``from:`` and ``concat`` it writes any split-transform-merge
pattern."""

from typing import Literal

from pydantic import Field

from scalelab.blocks.base import Block, PositiveInt, channels_of
from scalelab.blocks.layers import ChannelSlice, Node, Shape, ShapeError, chunks


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
