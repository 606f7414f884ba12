"""Normalisations over chosen axes of an input of any rank, every face: group norm and instance norm
(channels first, as torch), and layer norm and RMS norm over the trailing axes.

Ops per element, fvcore's count for the mean-and-variance norms: 4 (mean, variance, normalise), 5 with
an elementwise affine; RMS norm has no mean to subtract: 3 (square, mean, scale by the inverse root),
4 with its weight. Every statistic is kept in fp32 for backward (8 bytes per normalised group: a mean or
a root mean square, and an inverse standard deviation)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, elements, fmt_shape, fresh_output,
    no_macs, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

STAT_BYTES = 4  # statistics are fp32 for fp32, fp16 and bf16 inputs


def _channels_first(s: Shape, what: str, channels: int, least_rank: int = 1) -> int:
    if len(s) < least_rank or s[0] != channels:
        raise ShapeError(f"{what} expects {channels} channels first, got {fmt_shape(s)}")
    return channels


def _norm_cost(label: str, node: Primitive, s: Shape, per_element: int, params: int) -> LayerCost:
    n = elements(s)
    return LayerCost(label, params=params, ops=per_element * n, in_elems=n, out_elems=n, node=node)


@register
@dataclass(frozen=True)
class GroupNorm(Primitive):
    """torch's GroupNorm: the channels (first axis) in ``groups`` groups, each normalised over its
    channels and every other axis; a scale and a shift per channel when ``affine``."""

    kind = "group_norm"
    has_weights = True

    groups: int
    channels: int
    eps: float = 1e-5
    affine: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_weights", self.affine)  # trainable parameters only with the affine

    def out_shape(self, s: Shape) -> Shape:
        _channels_first(s, "group norm", self.channels)
        if self.channels % self.groups:
            raise ShapeError(f"group norm in {self.groups} groups needs a multiple of {self.groups} channels, "
                             f"got {self.channels}")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return _norm_cost("group_norm", self, s, 4 + self.affine, 2 * self.channels * self.affine)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        # native_group_norm_backward takes the input, the weight, and a mean and inverse std per group
        return Saved(input=True, per_sample_bytes=2 * STAT_BYTES * self.groups)

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.NORM, None

    def torch_module(self) -> nn.Module:
        from torch import nn

        return nn.GroupNorm(self.groups, self.channels, self.eps, self.affine)


@register
@dataclass(frozen=True)
class InstanceNorm(Primitive):
    """torch's InstanceNorm1d/2d without running statistics: each channel of each sample normalised
    over its other axes, in eval as in training; a scale and a shift per channel when ``affine``.
    torch runs it as a batch norm of the (1, N * C, ...) view, with the weight and bias repeated per
    sample: that weight copy is kept for backward (C elements per sample)."""

    kind = "instance_norm"
    has_weights = True

    channels: int
    eps: float = 1e-5
    affine: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_weights", self.affine)  # trainable parameters only with the affine

    def out_shape(self, s: Shape) -> Shape:
        if len(s) not in (2, 3):  # InstanceNorm1d takes (C, L), InstanceNorm2d (C, H, W)
            raise ShapeError(f"instance norm takes (channels, length) or (channels, height, width), got {fmt_shape(s)}")
        _channels_first(s, "instance norm", self.channels)
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return _norm_cost("instance_norm", self, s, 4 + self.affine, 2 * self.channels * self.affine)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        """The batch norm keeps its input (a view), its weight (the repeated copy) and a mean and an
        inverse std per (sample, channel)."""
        return Saved(input=True, per_sample_elements=self.channels * self.affine,
                     per_sample_bytes=2 * STAT_BYTES * self.channels)

    inner_peak = fresh_output  # in inference mode the output only (measured: no repeated copies)

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.NORM, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.norm_axes_torch import InstanceNorm  # torch: only when a module is built

        return InstanceNorm(self.channels, self.eps, affine=self.affine)


def _trailing(s: Shape, what: str, shape: tuple[int, ...]) -> int:
    """The number of positions a norm over the trailing ``shape`` normalises separately."""
    if len(s) < len(shape) or s[len(s) - len(shape):] != shape:
        raise ShapeError(f"{what} over the trailing {fmt_shape(shape)} does not fit a {fmt_shape(s)} input")
    return elements(s) // math.prod(shape)


@register
@dataclass(frozen=True)
class TrailingLayerNorm(Primitive):
    """torch's LayerNorm: each position normalised over the trailing axes ``shape`` (torch's
    normalized_shape); a scale (and a shift unless ``bias`` is false) per normalised element when
    ``affine``."""

    kind = "layer_norm_trailing"
    has_weights = True

    shape: tuple[int, ...]
    eps: float = 1e-5
    affine: bool = True
    bias: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_weights", self.affine)  # trainable parameters only with the affine

    def out_shape(self, s: Shape) -> Shape:
        _trailing(s, "layer norm", self.shape)
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        params = math.prod(self.shape) * (1 + self.bias) * self.affine
        return _norm_cost("layernorm", self, s, 4 + self.affine, params)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        # native_layer_norm_backward takes the input, the weight, and a mean and inverse std per position
        return Saved(input=True, per_sample_bytes=2 * STAT_BYTES * _trailing(s, "layer norm", self.shape))

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.NORM, None

    def torch_module(self) -> nn.Module:
        from torch import nn

        return nn.LayerNorm(self.shape, self.eps, self.affine, self.bias)


@register
@dataclass(frozen=True)
class RMSNorm(Primitive):
    """torch's RMSNorm: each position divided by its root mean square over the trailing axes
    ``shape``, then scaled per normalised element when ``affine``. ``eps`` None: torch's default, the
    machine epsilon of the input's dtype."""

    kind = "rms_norm"
    has_weights = True

    shape: tuple[int, ...]
    eps: "float | None" = None
    affine: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_weights", self.affine)  # trainable parameters only with the affine

    def out_shape(self, s: Shape) -> Shape:
        _trailing(s, "rms norm", self.shape)
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return _norm_cost("rms_norm", self, s, 3 + self.affine, math.prod(self.shape) * self.affine)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        """torch runs it as its steps (measured on the CPU; scalelab states the same for a GPU):
        ``x.pow(2)`` keeps the input, ``rsqrt`` its result (one per position, the input's dtype) which
        ``x * rsqrt`` keeps with the input, and the scale by the weight keeps that product when the
        weight trains. With an input that needs no gradient only the last step is recorded."""
        trained = weights_trained and self.affine
        normalised = elements(s) if trained else 0
        if not input_grad:
            return Saved(per_sample_elements=normalised)
        return Saved(input=True, per_sample_elements=_trailing(s, "rms norm", self.shape) + normalised)

    inner_peak = fresh_output  # in inference mode torch runs one fused kernel: the output only (measured)

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.NORM, None

    def torch_module(self) -> nn.Module:
        from torch import nn

        return nn.RMSNorm(self.shape, self.eps, self.affine)
