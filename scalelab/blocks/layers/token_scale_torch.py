"""The torch module of ``layerscale_trailing`` (imported by its builder only)."""

from __future__ import annotations

import torch
from torch import nn


class TrailingLayerScale(nn.Module):
    """timm's LayerScale: ``x * gamma``, its parameter named as timm names it."""

    def __init__(self, features: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((features,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
