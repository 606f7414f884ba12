"""The torch modules the wiring nodes and a few primitives build (imported by their builders only:
the analysis path never imports this module)."""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, body: nn.Module, shortcut: nn.Module, post: nn.Module) -> None:
        super().__init__()
        self.body, self.shortcut, self.post = body, shortcut, post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.body(x) + self.shortcut(x))


class Parallel(nn.Module):
    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


class Gate(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)


class Merge(nn.Module):
    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        if self.op == "concat":
            return torch.cat(xs, dim=1)
        out = xs[0] + xs[1]
        for x in xs[2:]:
            out.add_(x)  # in place on the fresh sum: one new tensor however many inputs
        return out


class ZeroPadShortcut(nn.Module):
    def __init__(self, stride: int, out_ch: int) -> None:
        super().__init__()
        self.stride, self.out_ch = stride, out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, 0, self.out_ch - x.shape[1]))


class StochasticDepth(nn.Module):
    """Drops the whole residual branch per sample while training (Huang et al. 2016)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)
