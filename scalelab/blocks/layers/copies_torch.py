"""Torch module of the copies in ``copies`` (imported by their builders only). Tensors arrive batch
axis first; a join also takes a tensor shared by the whole batch (batch axis 1), expanded to the
batch as a view before the copy."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from scalelab.blocks.layers.axes import batched


class Copy(nn.Module):
    def __init__(self, layer: Any) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: "torch.Tensor | list[torch.Tensor]") -> torch.Tensor:
        return getattr(self, "_" + self.layer.kind)(x)

    def extra_repr(self) -> str:
        return repr(self.layer)

    def _roll(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, list(self.layer.shifts), [batched(d) for d in self.layer.dims])

    def _contiguous(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone(memory_format=torch.contiguous_format)  # a copy even where x is contiguous already

    def _cat(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(batch_of(xs), batched(self.layer.dim))

    def _stack(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(batch_of(xs), batched(self.layer.dim))

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        value = layer.value if layer.mode == "constant" else None
        return nn.functional.pad(x, list(layer.pad), layer.mode, value)


def batch_of(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Inputs with a batch axis of 1 (a tensor shared by the batch) expanded to the others' batch."""
    batch = max(x.shape[0] for x in xs)
    return [x.expand(batch, *x.shape[1:]) if x.shape[0] != batch else x for x in xs]
