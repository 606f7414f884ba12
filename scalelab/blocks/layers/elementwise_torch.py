"""Torch modules of the element-wise operations in ``elementwise`` (imported by their builders only)."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

#: each one-input operation as torch runs it (rdiv as Python's ``s / x``: a reciprocal, then a product)
_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt, "reciprocal": torch.reciprocal, "square": torch.square, "sign": torch.sign,
    "floor": torch.floor, "ceil": torch.ceil, "round": torch.round, "erf": torch.erf, "sin": torch.sin,
    "cos": torch.cos,
}
_SCALAR: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "add": torch.add, "sub": torch.sub, "rsub": torch.rsub, "mul": torch.mul, "div": torch.div,
    "rdiv": lambda x, s: s / x, "pow": torch.pow, "fmod": torch.fmod, "remainder": torch.remainder,
}


class Unary(nn.Module):
    def __init__(self, op: str, scalar: Optional[float], low: Optional[float], high: Optional[float]) -> None:
        super().__init__()
        self.op, self.scalar, self.low, self.high = op, scalar, low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "clamp":
            return torch.clamp(x, self.low, self.high)
        if self.scalar is not None:
            return _SCALAR[self.op](x, self.scalar)
        return _UNARY[self.op](x)

    def extra_repr(self) -> str:
        return self.op if self.scalar is None else f"{self.op}, {self.scalar}"


def aligned(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Inputs of per-sample ranks that differ, each given size-1 axes after its batch axis (a view),
    so that torch broadcasts their per-sample shapes and never a batch axis against a sample's."""
    rank = max(x.dim() for x in xs)
    return [x if x.dim() == rank else x.view(x.shape[0], *[1] * (rank - x.dim()), *x.shape[1:]) for x in xs]


class Binary(nn.Module):
    def __init__(self, op: str, alpha: float) -> None:
        super().__init__()
        self.op, self.alpha = op, alpha

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        a, b = aligned(xs)
        if self.op in ("add", "sub"):
            return getattr(torch, self.op)(a, b, alpha=self.alpha)
        return getattr(torch, self.op)(a, b)

    def extra_repr(self) -> str:
        return self.op if self.alpha == 1 else f"{self.op}, alpha={self.alpha}"
