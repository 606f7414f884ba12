"""Torch modules of the sources in ``cosine_attention`` (imported by their builders only): each computes
its tensor on every pass as torchvision's Swin V2 does, and returns it expanded to the batch like
``position_bias``'s module."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from scalelab.blocks.layers.positions_torch import _expanded, gathered_bias


def coordinates_table(rows: int, cols: int) -> torch.Tensor:
    """(1, 2 rows - 1, 2 cols - 1, 2): torchvision's relative_coords_table of a V2 window, the relative
    offsets over (side - 1), times 8, mapped by sign(x) log2(1 + |x|) / 3."""
    h = torch.arange(-(rows - 1), rows, dtype=torch.float32)
    w = torch.arange(-(cols - 1), cols, dtype=torch.float32)
    table = torch.stack(torch.meshgrid([h, w], indexing="ij")).permute(1, 2, 0).contiguous().unsqueeze(0)
    table[:, :, :, 0] /= rows - 1
    table[:, :, :, 1] /= cols - 1
    table *= 8
    return torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0


class ContinuousPositionBias(nn.Module):
    def __init__(self, window: tuple[int, int], heads: int, hidden: int, shape: tuple[int, ...],
                 batch_axis: Optional[int]) -> None:
        super().__init__()
        self.window, self.heads, self.shape, self.batch_axis = window, heads, shape, batch_axis
        self.mlp = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, heads, bias=False))
        self.register_buffer("coordinates", coordinates_table(*window), persistent=False)  # recomputed, never stored

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        table = self.mlp(self.coordinates).view(-1, self.heads)
        bias = 16 * torch.sigmoid(gathered_bias(table, self.window, "signed"))
        return _expanded(bias, self.shape, self.batch_axis, like)


class LogitScale(nn.Module):
    def __init__(self, shape: tuple[int, ...], most: float, batch_axis: Optional[int]) -> None:
        super().__init__()
        self.shape, self.most, self.batch_axis = shape, most, batch_axis
        self.scale = nn.Parameter(torch.log(10 * torch.ones(shape)))  # torchvision's initial log 10

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        return _expanded(torch.clamp(self.scale, max=self.most).exp(), self.shape, self.batch_axis, like)
