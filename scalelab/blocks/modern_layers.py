"""Primitive layers of modern CNNs: layer norm over channels and the channels-last linear layer
(ConvNeXt), layer scale (CaiT, ConvNeXt), and channel slicing and shuffling (ShuffleNet). Shape and
cost formulas, as for the primitives of ``scalelab.blocks.layers``; ``scalelab.build_modern`` holds
their torch modules. Nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass

from scalelab.blocks.layers import LayerCost, Shape, ShapeError, _spatial, elements


def _channels(shape: Shape, what: str, channels: int) -> tuple[int, int, int]:
    c, h, w = _spatial(shape, what)
    if c != channels:
        raise ShapeError(f"{what} expects {channels} channels, got {c}")
    return c, h, w


@dataclass(frozen=True)
class LayerNorm:
    """Layer norm over the channels of each position (ConvNeXt's LayerNorm2d): a scale and a shift
    per channel; 5 ops per element with the affine, 4 without (fvcore's count: mean, variance,
    normalise, then scale and shift)."""

    channels: int
    eps: float = 1e-5

    def out_shape(self, s: Shape) -> Shape:
        _channels(s, "layer norm", self.channels)
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("layernorm", params=2 * self.channels, ops=5 * n, in_elems=n, out_elems=n)


@dataclass(frozen=True)
class ChannelLinear:
    """A linear layer over the channels of each position (ConvNeXt's MLP on channels-last maps):
    a 1x1 convolution's count, stored as a linear layer's (out, in) weight. MACs = h * w * in * out."""

    in_ch: int
    out_ch: int
    bias: bool = True

    def out_shape(self, s: Shape) -> Shape:
        _, h, w = _channels(s, "channel linear", self.in_ch)
        return (self.out_ch, h, w)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost(
            "linear",
            params=self.in_ch * self.out_ch + (self.out_ch if self.bias else 0),
            macs=elements(out) * self.in_ch,
            ops=elements(out) if self.bias else 0,
            in_elems=elements(s),
            out_elems=elements(out),
        )


@dataclass(frozen=True)
class LayerScale:
    """A learned per-channel scale (Touvron et al. 2021, CaiT; ConvNeXt): one multiply per element."""

    channels: int
    init: float = 1e-6

    def out_shape(self, s: Shape) -> Shape:
        _channels(s, "layer scale", self.channels)
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("layerscale", params=self.channels, ops=n, in_elems=n, out_elems=n)


@dataclass(frozen=True)
class ChannelSlice:
    """Channels ``start`` to ``stop`` (a view, no copy: torch's ``x[:, start:stop]``, ``chunk``)."""

    start: int
    stop: int

    def out_shape(self, s: Shape) -> Shape:
        c, h, w = _spatial(s, "channel slice")
        if not 0 <= self.start < self.stop <= c:
            raise ShapeError(f"channels {self.start}:{self.stop} are not within the {c} channels")
        return (self.stop - self.start, h, w)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("slice", in_elems=elements(s), out_elems=elements(out))


@dataclass(frozen=True)
class ChannelShuffle:
    """ShuffleNet's channel shuffle (Zhang et al. 2018): channels seen as groups x (c / groups),
    transposed; one copy per element."""

    groups: int

    def out_shape(self, s: Shape) -> Shape:
        c, _, _ = _spatial(s, "channel shuffle")
        if c % self.groups:
            raise ShapeError(f"channel shuffle in {self.groups} groups needs a multiple of {self.groups} channels, got {c}")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("shuffle", ops=n, in_elems=n, out_elems=n)


def chunks(channels: int, parts: int) -> list[tuple[int, int]]:
    """(start, stop) of each piece of ``torch.chunk(x, parts, dim=1)``: pieces of ceil(c / parts)
    channels, the last one smaller, and fewer than ``parts`` pieces when they run out (5 in 4 -> 2, 2, 1)."""
    size = -(-channels // parts)
    return [(start, min(start + size, channels)) for start in range(0, channels, size)]


MODERN_PRIMITIVES = (LayerNorm, ChannelLinear, LayerScale, ChannelSlice, ChannelShuffle)
