"""Torch modules of the primitives in ``scalelab.blocks.modern_layers``."""

from __future__ import annotations

import torch
from torch import nn

from scalelab.blocks import modern_layers as M


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of an NCHW map (torchvision's ConvNeXt LayerNorm2d)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ChannelLinear(nn.Linear):
    """A linear layer over the channels of an NCHW map (ConvNeXt's MLP)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    def __init__(self, channels: int, init: float):
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels, 1, 1), init))

    def forward(self, x):
        return self.scale * x


class ChannelSlice(nn.Module):
    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x):
        return x[:, self.start:self.stop]


class ChannelShuffle(nn.Module):
    """As torchvision's ShuffleNetV2 ``channel_shuffle``: view, transpose, copy."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous()
        return x.view(n, c, h, w)


def modern_module(node) -> nn.Module:
    if isinstance(node, M.LayerNorm):
        return LayerNorm2d(node.channels, node.eps)
    if isinstance(node, M.ChannelLinear):
        return ChannelLinear(node.in_ch, node.out_ch, node.bias)
    if isinstance(node, M.LayerScale):
        return LayerScale(node.channels, node.init)
    if isinstance(node, M.ChannelSlice):
        return ChannelSlice(node.start, node.stop)
    if isinstance(node, M.ChannelShuffle):
        return ChannelShuffle(node.groups)
    raise TypeError(f"no torch module for {type(node).__name__}")
