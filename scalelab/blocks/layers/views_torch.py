"""Torch module of the views in ``views`` (imported by their builders only): each runs the torch view
of its primitive on the batched tensor (the batch axis first, of the batch size or of 1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scalelab.blocks.layers.axes import batched
from scalelab.errors import ScalelabError


class View(nn.Module):
    def __init__(self, layer: Any) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, "_" + self.layer.kind)(x)

    def extra_repr(self) -> str:
        return repr(self.layer)

    def _reshape(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return x.view(x.shape[0], *self.layer.shape)
        except RuntimeError:  # torch would copy: the spec must say so with a contiguous block
            raise ScalelabError(f"reshape to {list(self.layer.shape)} of a tensor laid out by a permute or an "
                                f"expand is a copy, not a view; put a contiguous block before it") from None

    def _permute(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *[batched(d) for d in self.layer.dims])

    def _expand(self, x: torch.Tensor) -> torch.Tensor:
        new = len(self.layer.shape) - (x.dim() - 1)
        x = x.view(x.shape[0], *[1] * new, *x.shape[1:])  # new axes after the batch axis, not before it
        return x.expand(x.shape[0], *self.layer.shape)

    def _slice(self, x: torch.Tensor) -> torch.Tensor:
        d = self.layer.dim % (x.dim() - 1) + 1
        index = (slice(None),) * d + (slice(self.layer.start, self.layer.stop, self.layer.step),)
        return x[index]

    def _select(self, x: torch.Tensor) -> torch.Tensor:
        return x.select(batched(self.layer.dim), self.layer.index)
