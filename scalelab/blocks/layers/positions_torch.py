"""Torch modules of the sources in ``positions`` (imported by their builders only): each recomputes
its index or mask from its fields, as torchvision's and timm's Swin do, and returns it expanded to
the batch like ``param``'s module."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn

from scalelab.blocks.layers.plumbing_torch import INIT_STD


def relative_position_index(rows: int, cols: int) -> torch.Tensor:
    """(N, N) indices into a (2 rows - 1)(2 cols - 1)-entry table: Swin's relative_position_index."""
    coords = torch.stack(torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    return (relative[:, :, 0] + rows - 1) * (2 * cols - 1) + relative[:, :, 1] + cols - 1


def absolute_position_index(rows: int, cols: int) -> torch.Tensor:
    """(N, N) indices into a rows x cols-entry table: LeViT's and EfficientFormer's attention_bias_idxs."""
    coords = torch.stack(torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")).flatten(1)
    distance = (coords[:, :, None] - coords[:, None, :]).abs()
    return distance[0] * cols + distance[1]


def gathered_bias(table: torch.Tensor, window: tuple[int, int], offsets: str) -> torch.Tensor:
    """(heads, N, N): the table gathered by the window's index, as the source modules gather it."""
    n = window[0] * window[1]
    if offsets == "signed":  # a (entries, heads) table, Swin's gather and layout
        return table[relative_position_index(*window).flatten()].view(n, n, -1).permute(2, 0, 1).contiguous()
    return table[:, absolute_position_index(*window)]  # a (heads, entries) table


def window_mask(window: tuple[int, int], grid: tuple[int, int], shift: tuple[int, int], fill: float) -> torch.Tensor:
    """(windows, N, N): 0 between tokens of one region of the shifted map, ``fill`` across regions."""
    (wr, wc), (gr, gc) = window, grid
    regions = torch.zeros(gr * wr, gc * wc)
    cuts = [((0, -w), (-w, -s), (-s, None)) for w, s in zip(window, shift)]
    for i, (r0, r1) in enumerate(cuts[0]):
        for j, (c0, c1) in enumerate(cuts[1]):
            regions[r0:r1, c0:c1] = 3 * i + j
    regions = regions.view(gr, wr, gc, wc).permute(0, 2, 1, 3).reshape(gr * gc, wr * wc)
    differ = regions.unsqueeze(1) - regions.unsqueeze(2)
    return torch.where(differ != 0, torch.tensor(fill), torch.tensor(0.0))


def _expanded(t: torch.Tensor, shape: tuple[int, ...], batch_axis: Optional[int], like: torch.Tensor) -> torch.Tensor:
    t = t.reshape(shape)
    t = t.unsqueeze(0) if batch_axis is None else t.movedim(batch_axis, 0)
    return t.expand(like.shape[0], *t.shape[1:])


class PositionBias(nn.Module):
    """Gathered on every pass, or, when ``cached``, in eval mode on the first pass and kept, as timm's
    EfficientFormer and LeViT keep it (dropped on a change of mode or device, gathered again once the
    table is written in place, as loading a state dict writes it)."""

    def __init__(self, window: tuple[int, int], heads: int, shape: tuple[int, ...], batch_axis: Optional[int],
                 offsets: str, cached: bool = False) -> None:
        super().__init__()
        rows, cols = window
        self.shape, self.batch_axis, self.window, self.offsets = shape, batch_axis, window, offsets
        table = ((2 * rows - 1) * (2 * cols - 1), heads) if offsets == "signed" else (heads, rows * cols)
        self.table = nn.Parameter(torch.randn(table) * INIT_STD)
        self.cached = cached
        self.kept: Optional[tuple[int, torch.Tensor]] = None  # (the table's version, its gather)

    def train(self, mode: bool = True) -> "PositionBias":
        self.kept = None
        return super().train(mode)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> "PositionBias":
        self.kept = None  # a move to another device or dtype
        return super()._apply(fn, *args, **kwargs)

    def bias(self) -> torch.Tensor:
        if not self.cached or self.training:
            return gathered_bias(self.table, self.window, self.offsets)
        version = self.table._version  # noqa: SLF001  (torch's count of in-place writes: a loaded table)
        if self.kept is None or self.kept[0] != version:
            self.kept = (version, gathered_bias(self.table, self.window, self.offsets))
        return self.kept[1]

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        return _expanded(self.bias(), self.shape, self.batch_axis, like)


class WindowMask(nn.Module):
    """Built on every pass (torchvision), or once with the module when ``cached`` (timm's buffer)."""

    def __init__(self, window: tuple[int, int], grid: tuple[int, int], shift: tuple[int, int],
                 shape: tuple[int, ...], batch_axis: Optional[int], fill: float, cached: bool) -> None:
        super().__init__()
        self.fields = (window, grid, shift, fill)
        self.shape, self.batch_axis = shape, batch_axis
        self.register_buffer("mask", window_mask(*self.fields) if cached else None, persistent=False)

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        cached = self.mask
        mask = cached if isinstance(cached, torch.Tensor) else window_mask(*self.fields).to(like.device)
        return _expanded(mask, self.shape, self.batch_axis, like)
