"""Normalisation layers: batch normalisation (of any rank, channels first) and AlexNet's local
response normalisation. Group, instance, RMS and trailing-axes layer norms are in ``norm_axes``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, elements, fmt_shape, fresh_output,
    no_macs, register, spatial,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

STAT_BYTES = 4  # batchnorm keeps its batch mean and inverse std in fp32, per channel


@register
@dataclass(frozen=True)
class BatchNorm(Primitive):
    """Batch normalisation over channels, the first per-sample axis: (C,), (C, L) or (C, H, W), as
    torch's BatchNorm1d and BatchNorm2d. 2 parameters per channel; at inference it folds into a scale
    and a shift, 2 ops per element (fvcore's eval-mode count)."""

    kind = "batchnorm"
    has_weights = True

    channels: int
    eps: float = 1e-5
    momentum: float = 0.1

    def out_shape(self, s: Shape) -> Shape:
        if not 1 <= len(s) <= 3:  # BatchNorm1d takes (C,) and (C, L), BatchNorm2d (C, H, W)
            raise ShapeError(f"batchnorm takes (channels,), (channels, length) or (channels, height, width), "
                             f"got {fmt_shape(s)}")
        if s[0] != self.channels:
            raise ShapeError(f"batchnorm expects {self.channels} channels, got {s[0]}")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("batchnorm", params=2 * self.channels, ops=2 * n, in_elems=n, out_elems=n, node=self)

    train_macs = no_macs  # elementwise: other ops, not multiply-accumulates of a matrix product

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        # native_batch_norm_backward takes the input, the weight and the saved mean and inverse std
        return Saved(input=True, fixed_bytes=2 * STAT_BYTES * self.channels)

    inner_peak = fresh_output  # eval batchnorm writes a new tensor

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.NORM, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.norm_torch import BatchNorm  # torch: only when a module is built

        return BatchNorm(self.channels, self.eps, self.momentum)


@register
@dataclass(frozen=True)
class LocalResponseNorm(Primitive):
    """AlexNet's LRN: b = a / (k + alpha/size * sum of a^2 over `size` neighbouring channels)^beta.
    Per element: size squares, size-1 adds, then scale, add k, power and divide: 2*size + 3 ops."""

    kind = "lrn"

    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def out_shape(self, s: Shape) -> Shape:
        spatial(s, "local response norm")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("lrn", ops=(2 * self.size + 3) * n, in_elems=n, out_elems=n, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        """torch's F.local_response_norm is composite; its steps keep: ``x * x`` the input,
        ``avg_pool3d`` its channel-padded input, ``pow`` its base (the ``add(k)`` result), and
        ``x / div`` the input and ``div``: the input plus padded + 2n elements, not the output."""
        c, h, w = s
        return Saved(input=True, per_sample_elements=(c + self.size - 1) * h * w + 2 * elements(s))

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        """torch's F.local_response_norm: x*x, a channel-padded copy, an average pool, then
        ``.mul(alpha).add(k).pow(beta)`` and ``x / div``: at most ``max(n + padded, 3n)``."""
        c, h, w = s
        n = elements(out)
        padded = (c + self.size - 1) * h * w  # size // 2 channels before, (size - 1) // 2 after
        return InnerPeak(out, n, max(n + padded, 3 * n))

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.NORM, None

    def torch_module(self) -> nn.Module:
        from torch import nn

        return nn.LocalResponseNorm(self.size, self.alpha, self.beta, self.k)
