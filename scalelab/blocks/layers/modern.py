"""Primitive layers of modern CNNs, every face: layer norm over channels and the channels-last
linear layer (ConvNeXt), layer scale (CaiT, ConvNeXt), and channel slicing and shuffling
(ShuffleNetV2). Their torch modules are in ``modern_torch``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, TrainMacs, allocates_nothing, elements,
    fresh_output, no_macs, register, spatial, view_of_input,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

STAT_BYTES = 4  # layer norm keeps a mean and an inverse std per position, in fp32 for fp32/fp16/bf16


def _channels(shape: Shape, what: str, channels: int) -> tuple[int, int, int]:
    c, h, w = spatial(shape, what)
    if c != channels:
        raise ShapeError(f"{what} expects {channels} channels, got {c}")
    return c, h, w


def chunks(channels: int, parts: int) -> list[tuple[int, int]]:
    """(start, stop) of each piece of ``torch.chunk(x, parts, dim=1)``: pieces of ceil(c / parts)
    channels, the last one smaller, and fewer than ``parts`` pieces when they run out (5 in 4 -> 2, 2, 1)."""
    size = -(-channels // parts)
    return [(start, min(start + size, channels)) for start in range(0, channels, size)]


@register
@dataclass(frozen=True)
class LayerNorm(Primitive):
    """Layer norm over the channels of each position (ConvNeXt's LayerNorm2d): a scale and a shift
    per channel; 5 ops per element (fvcore's count with the affine: mean, variance, normalise, scale
    and shift)."""

    kind = "layernorm"
    has_weights = True

    channels: int
    eps: float = 1e-5

    def out_shape(self, s: Shape) -> Shape:
        _channels(s, "layer norm", self.channels)
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("layernorm", params=2 * self.channels, ops=5 * n, in_elems=n, out_elems=n, node=self)

    train_macs = no_macs  # elementwise: other ops

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        # native_layer_norm_backward takes the input (the permuted view), the weight, and the mean
        # and inverse std of each position
        _, h, w = s
        return Saved(input=True, per_sample_bytes=2 * STAT_BYTES * h * w)

    inner_peak = fresh_output  # the permutes are views; layer_norm writes the output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.NORM, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.modern_torch import LayerNorm2d  # torch: only when a module is built

        return LayerNorm2d(self.channels, self.eps)


@register
@dataclass(frozen=True)
class ChannelLinear(Primitive):
    """A linear layer over the channels of each position (ConvNeXt's MLP on channels-last maps):
    stored as a linear layer's (out, in) weight, run as a 1x1 convolution, so that its count, its
    memory and its kernel are a pointwise conv's whatever the memory layout. MACs = h * w * in * out."""

    kind = "channel_linear"
    has_weights = True

    in_ch: int
    out_ch: int
    bias: bool = True

    def out_shape(self, s: Shape) -> Shape:
        _, h, w = _channels(s, "channel linear", self.in_ch)
        return (self.out_ch, h, w)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("linear", params=self.in_ch * self.out_ch + (self.out_ch if self.bias else 0),
                         macs=elements(out) * self.in_ch, ops=elements(out) if self.bias else 0,
                         in_elems=elements(s), out_elems=elements(out), node=self)

    def train_macs(self, s: Shape, out: Shape) -> TrainMacs:
        macs = elements(out) * self.in_ch  # forward, input gradient, weight gradient: the same pairs
        return TrainMacs(forward=macs, grad_input=macs, grad_weight=macs)

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved(input=True)  # torch's convolution node keeps its input whenever it is recorded

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, int]:
        return LatencyClass.POINTWISE_CONV, self.out_ch

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.modern_torch import ChannelLinear as Module  # torch: only when a module is built

        return Module(self.in_ch, self.out_ch, self.bias)


@register
@dataclass(frozen=True)
class LayerScale(Primitive):
    """A learned scale per channel (Touvron et al. 2021, CaiT; ConvNeXt): one multiply per element."""

    kind = "layerscale"
    has_weights = True

    channels: int
    init: float = 1e-6

    def out_shape(self, s: Shape) -> Shape:
        _channels(s, "layer scale", self.channels)
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("layerscale", params=self.channels, ops=n, in_elems=n, out_elems=n, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        # scale * x: the input's gradient needs the scale (a parameter), the scale's needs the input
        return Saved(input=weights_trained)

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.modern_torch import LayerScale as Module  # torch: only when a module is built

        return Module(self.channels, self.init)


@register
@dataclass(frozen=True)
class ChannelSlice(Primitive):
    """Channels ``start`` to ``stop``: a view, no copy (torch's ``x[:, start:stop]``, ``chunk``)."""

    kind = "channel_slice"

    start: int
    stop: int

    def out_shape(self, s: Shape) -> Shape:
        c, h, w = spatial(s, "channel slice")
        if not 0 <= self.start < self.stop <= c:
            raise ShapeError(f"channels {self.start}:{self.stop} are not within the {c} channels")
        return (self.stop - self.start, h, w)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("slice", in_elems=elements(s), out_elems=elements(out), node=self)

    train_macs = no_macs

    saved = view_of_input  # slicing's backward needs only sizes

    inner_peak = allocates_nothing

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.FREE, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.modern_torch import ChannelSlice as Module  # torch: only when a module is built

        return Module(self.start, self.stop)


@register
@dataclass(frozen=True)
class ChannelShuffle(Primitive):
    """ShuffleNet's channel shuffle (Zhang et al. 2018): channels seen as groups x (c / groups),
    transposed and copied; one copy per element."""

    kind = "channel_shuffle"

    groups: int

    def out_shape(self, s: Shape) -> Shape:
        c, _, _ = spatial(s, "channel shuffle")
        if c % self.groups:
            raise ShapeError(f"channel shuffle in {self.groups} groups needs a multiple of {self.groups} channels, got {c}")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("shuffle", ops=n, in_elems=n, out_elems=n, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved()  # views and a copy: their backward needs only sizes

    inner_peak = fresh_output  # .contiguous() writes the shuffled copy

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.modern_torch import ChannelShuffle as Module  # torch: only when a module is built

        return Module(self.groups)
