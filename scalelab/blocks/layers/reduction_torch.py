"""Torch modules of the reductions and softmax in ``reduction`` (imported by their builders only)."""

from __future__ import annotations

import torch
from torch import nn

from scalelab.blocks.layers.axes import batched


class Reduce(nn.Module):
    def __init__(self, op: str, dims: tuple[int, ...], keepdim: bool, p: float, correction: float) -> None:
        super().__init__()
        self.op, self.dims, self.keepdim, self.p, self.correction = op, [batched(d) for d in dims], keepdim, p, correction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "norm":
            return torch.linalg.vector_norm(x, self.p, self.dims, self.keepdim)
        if self.op in ("var", "std"):
            return getattr(torch, self.op)(x, self.dims, correction=self.correction, keepdim=self.keepdim)
        return getattr(torch, self.op)(x, self.dims, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"{self.op}, dims={self.dims}, keepdim={self.keepdim}"


class Softmax(nn.Module):
    def __init__(self, dim: int, log: bool) -> None:
        super().__init__()
        self.dim, self.log = batched(dim), log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.log_softmax if self.log else torch.softmax)(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, log={self.log}"
