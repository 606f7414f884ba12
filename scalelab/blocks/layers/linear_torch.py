"""The torch module of a linear layer whose bias has a slice zeroed on every pass (imported by its
builder only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ZeroedBiasLinear(nn.Linear):
    """nn.Linear whose bias[start:stop] is zeroed on every pass, as torchvision's Swin V2 zeroes its
    keys' bias: the parameter keeps its values, the layer reads zeros there."""

    def __init__(self, in_features: int, out_features: int, zeroed: tuple[int, int]) -> None:
        super().__init__(in_features, out_features, True)
        self.zeroed = zeroed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.clone()
        bias[self.zeroed[0]:self.zeroed[1]].zero_()
        return F.linear(x, self.weight, bias)
