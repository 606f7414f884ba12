"""Pooling layers: windowed max/average pooling and adaptive average pooling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, elements, fresh_output, no_macs, register,
    spatial, window_out,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

INDEX_BYTES = 8  # max pooling keeps int64 argmax indices, one per output


@register
@dataclass(frozen=True)
class Pool(Primitive):
    """Max or average pooling over a window. Max: kh*kw - 1 comparisons per output; average:
    kh*kw - 1 adds and a divide per output."""

    kind = "pool"

    op: str  # "max" | "avg"
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True

    def out_shape(self, s: Shape) -> Shape:
        c, h, w = spatial(s, f"{self.op} pool")
        for k, p in zip(self.kernel, self.padding):
            if p > k // 2:
                raise ShapeError(f"pool padding {p} must be at most half the kernel {k}")
        oh = window_out(h, self.kernel[0], self.stride[0], self.padding[0], ceil=self.ceil_mode)
        ow = window_out(w, self.kernel[1], self.stride[1], self.padding[1], ceil=self.ceil_mode)
        if oh < 1 or ow < 1:
            raise ShapeError(f"a {self.kernel[0]}x{self.kernel[1]} {self.op} pool does not fit a {h}x{w} map")
        return (c, oh, ow)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        window = self.kernel[0] * self.kernel[1]
        per_out = window - 1 if self.op == "max" else window
        return LayerCost(f"{self.op}pool", ops=per_out * elements(out), in_elems=elements(s), out_elems=elements(out),
                         node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        # max_pool2d_with_indices_backward takes the input and the argmax indices
        return Saved(input=True, per_sample_bytes=INDEX_BYTES * elements(out) if self.op == "max" else 0)

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.POOL, None  # far below peak on CPUs: a compare per window element

    def torch_module(self) -> nn.Module:
        from torch import nn

        if self.op == "max":
            return nn.MaxPool2d(self.kernel, self.stride, self.padding, ceil_mode=self.ceil_mode)
        return nn.AvgPool2d(self.kernel, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


@register
@dataclass(frozen=True)
class AdaptiveAvgPool(Primitive):
    """Average pooling to a fixed output size (1x1 = global). One add per input element, as fvcore
    counts it."""

    kind = "adaptive_avgpool"

    size: tuple[int, int]

    def out_shape(self, s: Shape) -> Shape:
        c, _, _ = spatial(s, "adaptive average pool")
        return (c, *self.size)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("avgpool", ops=elements(s), in_elems=elements(s), out_elems=elements(out), node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        # torch computes a 1x1 adaptive pool as a mean, which keeps only sizes
        return Saved(input=self.size != (1, 1))

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from torch import nn

        return nn.AdaptiveAvgPool2d(self.size)
