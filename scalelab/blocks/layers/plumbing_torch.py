"""Torch modules of the primitives in ``plumbing`` (imported by their builders only)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

#: the spread a learned tensor starts with (timm's trunc_normal_(std=.02) for tokens and embeddings)
INIT_STD = 0.02


class Param(nn.Module):
    """A learned tensor (or a buffer) as a block: called with the network input only to read the
    batch size, it returns the tensor expanded to the batch, a view sharing the tensor's storage."""

    def __init__(self, shape: tuple[int, ...], trainable: bool, batch_axis: Optional[int]) -> None:
        super().__init__()
        self.batch_axis = batch_axis
        value = torch.randn(shape) * INIT_STD
        if trainable:
            self.weight = nn.Parameter(value)
        else:
            self.register_buffer("weight", value)

    def forward(self, like: torch.Tensor) -> torch.Tensor:
        # without grad, a view of a parameter would still claim requires_grad with no grad_fn, which
        # autograd hooks (FlopCounterMode's module tracker) refuse; detaching is also a view
        w = self.weight if torch.is_grad_enabled() else self.weight.detach()
        w = w.unsqueeze(0) if self.batch_axis is None else w.movedim(self.batch_axis, 0)
        return w.expand(like.shape[0], *w.shape[1:])


class Split(nn.Module):
    def __init__(self, sizes: list[int], dim: int) -> None:
        super().__init__()
        self.sizes, self.dim = sizes, dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.split(x, self.sizes, dim=self.dim)


class Unbind(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.unbind(x, dim=self.dim)
