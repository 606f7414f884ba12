"""Where a tensor's channels lie, for width scaling that follows the wiring: a feature map holds them
on its first per-sample axis, but a permute moves them (channels-last: (H, W, C)), a reshape that
merges or splits only the other axes keeps them on an axis of its own, and a reduction over other
axes shifts them. Each rule here maps the channel axis of a block's input to its output's, or says
the block cannot carry it (None); ``scaling.wired`` then ties the counts."""

from __future__ import annotations

import math
from typing import Optional

from scalelab.blocks import Block


def permuted_axis(block: Block, axis: int, rank: int) -> int:
    """The output axis a permute moves input axis ``axis`` to."""
    dims = [d % rank for d in block.dims]  # type: ignore[attr-defined]
    return dims.index(axis)


def reshaped_axis(inp: tuple, out: tuple, axis: int) -> Optional[int]:
    """The output axis of a reshape that keeps input axis ``axis`` whole (same size, as many
    elements before it): merging (H, W) of (C, H, W) into (C, HW) keeps C on axis 0. None where the
    reshape cuts or merges that axis (its size would have to be restated from the others')."""
    before = math.prod(inp[:axis])
    for b in range(len(out)):
        if math.prod(out[:b]) == before and out[b] == inp[axis]:
            return b
        if math.prod(out[:b]) > before:
            break
    return None


def reduced_axis(block: Block, axis: int, rank: int) -> Optional[int]:
    """The output axis of a reduction over other axes (None where it reduces the channels)."""
    dims = {d % rank for d in block.dims}  # type: ignore[attr-defined]
    if axis in dims:
        return None
    return axis if block.keepdim else axis - sum(d < axis for d in dims)  # type: ignore[attr-defined]


def sample_axis(dim: int, rank: int) -> int:
    return dim % rank if rank else 0


def split_unit(sizes: list[int], divisor: int) -> Optional[int]:
    """The common size of a split's pieces where they can scale in proportion: each piece a whole
    number of units and the unit a multiple of the channel divisor, so the unit rounds as any count
    does and every piece with it (equal halves stay equal halves). None where no such unit exists
    (pieces of 3 and 5 channels: a unit of 1 would round up to the divisor)."""
    unit = math.gcd(*sizes)
    return unit if unit % divisor == 0 else None


def param_axis(block: Block, axis: int) -> int:
    """The axis of a learned tensor's shape (as the module holds it) that is per-sample axis ``axis``."""
    batch = block.batch_axis  # type: ignore[attr-defined]
    return axis + (1 if batch is not None and batch <= axis else 0)


def restated_shape(block: Block, axis: int, channels: int) -> list[int]:
    """A reshape's target shape with its channel entry ``axis`` set to ``channels`` (an inferred -1
    stays inferred)."""
    shape = list(block.shape)  # type: ignore[attr-defined]
    if shape[axis] != -1:
        shape[axis] = channels
    return shape
