"""Torch module of ``resample.Interpolate`` (imported by its builder only)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class Interpolate(nn.Module):
    def __init__(self, mode: str, size: Optional[tuple[int, ...]], scale: Optional[tuple[float, ...]],
                 align_corners: Optional[bool]) -> None:
        super().__init__()
        self.mode, self.align_corners = mode, align_corners
        # one value stands for every spatial axis, as torch reads a single number
        self.size = (size[0] if len(size) == 1 else list(size)) if size is not None else None
        self.scale = (scale[0] if len(scale) == 1 else list(scale)) if scale is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, self.size, self.scale, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        return f"{self.mode}, size={self.size}, scale_factor={self.scale}, align_corners={self.align_corners}"
