"""The torch module of a convolution of a standardised weight (torch imported here only)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _Standardised:
    """A convolution whose weight is standardised before each pass, computed as timm's StdConv2d (no
    gain) and ScaledStdConv2d (gain) compute it, so that their state dicts load and the outputs agree:
    ``weight``, ``bias`` (when any) and ``gain`` (when any), in that order."""

    weight: torch.Tensor  # nn.ConvNd's, the sibling base

    def standardise(self, eps: float, gain: bool, gamma: float) -> None:
        self.eps = eps
        self.scale = gamma * self.weight[0].numel() ** -0.5  # as timm: gamma / sqrt(fan-in), a Python float
        shape = (self.weight.shape[0], *[1] * (self.weight.dim() - 1))
        self.gain = nn.Parameter(torch.ones(shape)) if gain else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        scale = None if self.gain is None else (self.gain * self.scale).view(-1)
        w = F.batch_norm(w.reshape(1, w.shape[0], -1), None, None, weight=scale, training=True, momentum=0.0,
                         eps=self.eps).reshape_as(w)
        return self._conv_forward(x, w, self.bias)  # type: ignore[attr-defined]  # nn.ConvNd's, the sibling base


class StdConv1d(_Standardised, nn.Conv1d):
    pass


class StdConv2d(_Standardised, nn.Conv2d):
    pass


class StdConv3d(_Standardised, nn.Conv3d):
    pass


def std_conv(axes: int, *args: Any, eps: float, gain: bool, gamma: float) -> nn.Module:
    """A standardised Conv1d, Conv2d or Conv3d (by ``axes``) with nn.ConvNd's positional arguments."""
    module = (StdConv1d, StdConv2d, StdConv3d)[axes - 1](*args)
    module.standardise(eps, gain, gamma)
    return module
