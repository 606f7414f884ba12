"""Torch modules of the primitives in ``matmul`` (imported by their builders only). Each takes the
list of its inputs, batch axis first, and applies the operation to each sample."""

from __future__ import annotations

import torch
from torch import nn


def _lift(x: torch.Tensor, rank: int) -> torch.Tensor:
    """``x`` with size-1 axes after its batch axis up to ``rank`` axes (a view): torch then broadcasts
    the per-sample leading axes, never the batch axis against them."""
    return x.reshape(x.shape[0], *([1] * (rank - x.dim())), *x.shape[1:])


class Matmul(nn.Module):
    """torch.matmul of two inputs on per-sample shapes: a 1-d operand is a row (left) or a column
    (right), dropped from the output as torch.matmul drops it."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        a, b = xs
        row, column = a.dim() == 2, b.dim() == 2  # (batch, k): a vector per sample
        a = a.unsqueeze(1) if row else a
        b = b.unsqueeze(-1) if column else b
        rank = max(a.dim(), b.dim())
        y = torch.matmul(_lift(a, rank), _lift(b, rank))
        y = y.squeeze(-1) if column else y
        return y.squeeze(-1 if column else -2) if row else y
