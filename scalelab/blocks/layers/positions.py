"""Sources that window attention adds to its scores, each computed from its fields rather than stored:
a relative position bias gathered from a learned table by Swin's relative position index (Liu et al.
2021, §3.2; torchvision's and timm's Swin, MaxViT), and the mask of shifted windows (0 between tokens
of one region, -100 across regions, as torchvision and timm build it). Every face; the torch modules
(in ``positions_torch``) recompute the index and the mask from the fields, so a spec states them
without holding them.

Like ``param``, each is one tensor for the whole batch: ``shape`` is the tensor as the scores read
it (the bias (heads, N, N) or the mask (windows, N, N), N = window tokens, with axes of size 1 where
they broadcast), ``batch_axis`` an axis of size 1 that lines up with the batch. They launch their
kernels once per forward pass, whatever the batch: their ops are weight ops, not per-sample ops, and
they hold no activation memory of the batch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, allocates_nothing, fmt_shape, no_macs, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


def _core(shape: Shape, batch_axis: Optional[int], core: Shape, what: str) -> Shape:
    """The per-sample shape of a source whose tensor is ``core`` with axes of size 1 added."""
    if math.prod(shape) != math.prod(core) or [d for d in shape if d != 1] != [d for d in core if d != 1]:
        raise ShapeError(f"{what} of {fmt_shape(core)} cannot be read as {fmt_shape(shape)}")
    return shape if batch_axis is None else shape[:batch_axis] + shape[batch_axis + 1:]


class _Source(Primitive):
    """What the two sources share: no input, no per-sample work, one tensor for the batch."""

    shape: Shape
    batch_axis: Optional[int]

    def core(self) -> Shape:  # pragma: no cover - every kind overrides
        raise NotImplementedError

    def out_shape(self, s: Shape) -> Shape:
        return _core(self.shape, self.batch_axis, self.core(), self.kind)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved()  # the gather's backward reads the index, a tensor of the module, not of the batch

    inner_peak = allocates_nothing  # computed once for the batch: no activation of it

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None


@register
@dataclass(frozen=True)
class PositionBias(_Source):
    """A relative position bias of ``heads`` heads over a ``window`` (rows, columns) of N = rows x
    columns tokens, laid out as (heads, N, N), for tokens i = (ri, ci), j = (rj, cj) in row-major
    order. ``offsets`` "signed" (Swin, MaxViT): a learned table of (2 rows - 1)(2 columns - 1) x
    heads entries gathered by index[i, j] = (ri - rj + rows - 1)(2 columns - 1) + ci - cj + columns -
    1; "absolute" (LeViT, EfficientFormer): a table of heads x rows columns entries gathered by
    |ri - rj| columns + |ci - cj|. The table is its parameters. Weight ops per pass, as a module that
    gathers on every pass runs them: the gather, heads N^2, and for signed offsets the copy that lays
    it out by heads, heads N^2 more (an absolute table is gathered in that layout); none when
    ``cached`` (gathered on the first eval pass and kept, timm's ``attention_bias_cache`` in
    EfficientFormer and LeViT: every later pass reads the kept tensor)."""

    kind = "position_bias"
    has_weights = True

    window: tuple[int, int]
    heads: int
    shape: Shape
    batch_axis: Optional[int] = None
    offsets: str = "signed"
    cached: bool = False

    def entries(self) -> int:
        rows, cols = self.window
        return (2 * rows - 1) * (2 * cols - 1) if self.offsets == "signed" else rows * cols

    def core(self) -> Shape:
        n = self.window[0] * self.window[1]
        return (self.heads, n, n)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        gathered = math.prod(self.core())
        return LayerCost("position_bias", params=self.entries() * self.heads, out_elems=gathered,
                         weight_ops=0 if self.cached else (2 if self.offsets == "signed" else 1) * gathered,
                         node=self)

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.positions_torch import PositionBias as Module  # torch: only when a module is built

        return Module(self.window, self.heads, self.shape, self.batch_axis, self.offsets, self.cached)

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        return walker.source(self, True)


@register
@dataclass(frozen=True)
class WindowMask(_Source):
    """The mask of shifted windows: a map of ``grid`` (rows, columns) windows of ``window`` tokens a
    side, cut after a cyclic shift by ``shift``, falls into 3 x 3 regions (the last window row and
    column split where the shift wrapped around); the mask of two tokens of a window is 0 in one
    region and ``fill`` across two, (windows, N, N). No parameters. Weight ops per pass, unless
    ``cached`` (built once with the module, timm's buffer), as torchvision builds it: the region map's
    zero fill, its nine regions' fills and its layout copy into windows (3 windows N), then the
    pairwise difference, the two compares with 0 and the two masked fills (5 windows N^2)."""

    kind = "window_mask"

    window: tuple[int, int]
    grid: tuple[int, int]
    shift: tuple[int, int]
    shape: Shape
    batch_axis: Optional[int] = None
    fill: float = -100.0
    cached: bool = False

    def core(self) -> Shape:
        n = self.window[0] * self.window[1]
        return (self.grid[0] * self.grid[1], n, n)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        windows, n, _ = self.core()
        built = 0 if self.cached else 3 * windows * n + 5 * windows * n * n
        return LayerCost("window_mask", out_elems=windows * n * n, weight_ops=built, node=self)

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.positions_torch import WindowMask as Module  # torch: only when a module is built

        return Module(self.window, self.grid, self.shift, self.shape, self.batch_axis, self.fill, self.cached)

    def train(self, walker: TrainWalk, x: Tensor) -> Tensor:
        return walker.source(self, False)
