"""Convolution over 1, 2 or 3 spatial axes (Conv1d, Conv2d, Conv3d), optionally of a standardised
weight (timm's StdConv2d and ScaledStdConv2d): every face."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, TrainMacs, elements, fmt_shape, register,
    window_out,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

#: how a convolution pads its input (torch's ``padding_mode``)
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

# torch's limits: reflection needs padding < size, circular padding may wrap only once
_PAD_LIMIT = {"reflect": lambda pad, size: pad < size, "circular": lambda pad, size: pad <= size}

STAT_BYTES = 4  # batch norm's mean and inverse deviation are fp32 whatever the weight's dtype


@dataclass(frozen=True)
class WeightStd:
    """Weight standardisation: before each forward pass every output channel's filter is normalised to
    zero mean and unit variance (biased, plus ``eps``), as ``F.batch_norm`` in training mode on the
    weight reshaped to (1, out, fan-in) computes it; with ``gain`` it is then scaled by a learned gain
    per output channel times ``gamma / sqrt(fan-in)`` (ScaledStdConv2d). It runs once per pass on the
    weights, whatever the batch: its ops are weight ops, apart from the per-sample ones."""

    eps: float = 1e-6
    gain: bool = False
    gamma: float = 1.0

    def weight_ops(self, out_ch: int, weights: int) -> int:
        """The project's mean-and-variance norm count per weight element: 4 (mean, variance,
        normalise), 5 with the gain; and one multiply per output channel for gain * scale."""
        return weights * (5 if self.gain else 4) + (out_ch if self.gain else 0)


@register
@dataclass(frozen=True)
class Conv(Primitive):
    """Convolution over the spatial axes after the channels: as many as the kernel has sizes
    (1: (C, L) as Conv1d, 2: (C, H, W) as Conv2d, 3: Conv3d).
    MACs = output elements * (in / groups) * prod(kernel)."""

    kind = "conv"
    has_weights = True

    in_ch: int
    out_ch: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...] = ()  # () here: 1 per axis
    padding: tuple[int, ...] = ()  # () here: 0 per axis
    dilation: tuple[int, ...] = ()  # () here: 1 per axis
    groups: int = 1
    bias: bool = False
    padding_mode: PaddingMode = "zeros"
    standardize: "WeightStd | None" = None

    def __post_init__(self) -> None:
        axes = len(self.kernel)
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1)):
            if getattr(self, name) == ():
                object.__setattr__(self, name, (default,) * axes)
        if not 1 <= axes <= 3 or any(len(v) != axes for v in (self.stride, self.padding, self.dilation)):
            raise ValueError(f"a conv's kernel, stride, padding and dilation give one size per spatial axis "
                             f"(1 to 3), got {self.kernel}, {self.stride}, {self.padding}, {self.dilation}")

    def _sizes(self, s: Shape) -> Shape:
        """The spatial sizes of input ``s``, checked against the channels and the padding mode."""
        if len(s) != len(self.kernel) + 1:
            layout = ["(channels, length)", "(channels, height, width)", "(channels, depth, height, width)"]
            raise ShapeError(f"a {len(self.kernel)}-d conv needs a {layout[len(self.kernel) - 1]} input, got {fmt_shape(s)}")
        if s[0] != self.in_ch:
            raise ShapeError(f"conv expects {self.in_ch} input channels, got {s[0]}")
        sizes = s[1:]
        limit = _PAD_LIMIT.get(self.padding_mode)
        if limit and not all(limit(p, n) for p, n in zip(self.padding, sizes)):
            raise ShapeError(f"{self.padding_mode} padding {fmt_shape(self.padding)} is too large for a {fmt_shape(sizes)} map")
        return sizes

    def out_shape(self, s: Shape) -> Shape:
        sizes = self._sizes(s)
        out = tuple(window_out(n, k, st, p, d)
                    for n, k, st, p, d in zip(sizes, self.kernel, self.stride, self.padding, self.dilation))
        if min(out) < 1:
            raise ShapeError(
                f"a {fmt_shape(self.kernel)} conv (padding {self.padding[0]}, dilation "
                f"{self.dilation[0]}) does not fit a {fmt_shape(sizes)} map"
            )
        return (self.out_ch, *out)

    def _per_out(self) -> int:
        return (self.in_ch // self.groups) * math.prod(self.kernel)

    def _padded(self, s: Shape) -> int:
        """Elements of the input padded on every side (other padding modes pad into a new tensor)."""
        return s[0] * math.prod(n + 2 * p for n, p in zip(s[1:], self.padding))

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        weights = self.out_ch * self._per_out()
        std = self.standardize
        return LayerCost(
            "conv",
            params=weights + (self.out_ch if self.bias else 0) + (self.out_ch if std and std.gain else 0),
            macs=elements(out) * self._per_out(),
            ops=elements(out) if self.bias else 0,  # one add per output for the bias
            in_elems=elements(s),
            out_elems=elements(out),
            weight_ops=std.weight_ops(self.out_ch, weights) if std else 0,
            node=self,
        )

    def train_macs(self, s: Shape, out: Shape) -> TrainMacs:
        """Each (output position, weight) pair is one multiply-add in every pass: the forward sums
        it into the output, the input gradient (a transposed convolution of the output gradient)
        sends it back to the input, the weight gradient accumulates it into the weight. So all
        three equal the forward MACs, groups included.

        torch's FlopCounterMode (``conv_backward_flop``) counts the weight gradient as a dense
        convolution of the transposed input with the output gradient, which ignores ``groups``:
        it reports ``groups`` times the multiply-adds done (a depthwise conv over C channels: C
        times). scalelab counts the true figure; the tests assert that exact difference."""
        macs = elements(out) * self._per_out()
        return TrainMacs(forward=macs, grad_input=macs, grad_weight=macs)

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        """torch's convolution node keeps its input whenever it is recorded, even with a frozen weight
        (measured: tests/test_layer_registry.py). Other padding modes pad first (F.pad): the conv
        keeps the padded copy, and a reflection or replication pad keeps its input when that needs a
        gradient (circular padding is slices and a cat, which keep only sizes).

        A standardised weight is a tensor of its own, which the conv keeps; when the weights train,
        the standardisation is recorded too: batch norm keeps its fp32 mean and inverse deviation per
        output channel and, with a gain, the gain * scale it multiplies by (its input is a view of the
        weight, which is no activation)."""
        extra = self._std_saved(weights_trained)
        if self.padding_mode == "zeros":
            return Saved(input=True, **extra)
        return Saved(input=input_grad and self.padding_mode in ("reflect", "replicate"),
                     per_sample_elements=self._padded(s), **extra)

    def _std_saved(self, weights_trained: bool) -> dict:
        std = self.standardize
        if std is None:
            return {}
        weights = self.out_ch * self._per_out()
        if not weights_trained:
            return {"fixed_elements": weights}
        return {"fixed_elements": weights + (self.out_ch if std.gain else 0), "fixed_bytes": 2 * STAT_BYTES * self.out_ch}

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        """Per sample: a standardised weight is a temporary of the weight's size, the same for any
        batch, so it is no per-sample activation and is not in this figure (memory counts weights apart)."""
        n = elements(out)
        if self.padding_mode == "zeros":
            return InnerPeak(out, n, n)
        return InnerPeak(out, n, self._padded(s) + n)  # nn.ConvNd first pads its input into a new tensor (F.pad)

    def latency(self) -> tuple[LatencyClass, int]:
        if self.groups == 1:
            kind = LatencyClass.POINTWISE_CONV if max(self.kernel) == 1 else LatencyClass.DENSE_CONV
        elif self.groups != self.in_ch:
            kind = LatencyClass.GROUPED_CONV
        else:
            kind = LatencyClass.DEPTHWISE_CONV if max(self.stride) == 1 else LatencyClass.STRIDED_DEPTHWISE_CONV
        return kind, self.out_ch

    def torch_module(self) -> nn.Module:
        from torch import nn

        if self.standardize is not None:
            from scalelab.blocks.layers.conv_torch import std_conv  # torch: only when a module is built

            std = self.standardize
            return std_conv(len(self.kernel), self.in_ch, self.out_ch, self.kernel, self.stride, self.padding,
                            self.dilation, self.groups, self.bias, self.padding_mode,
                            eps=std.eps, gain=std.gain, gamma=std.gamma)
        module: Callable[..., nn.Module] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[len(self.kernel) - 1]  # sizes match its rank
        return module(self.in_ch, self.out_ch, self.kernel, self.stride, self.padding, self.dilation,
                      self.groups, self.bias, self.padding_mode)
