"""Interpolation (``torch.nn.functional.interpolate``, ``nn.Upsample``): the trailing axes of a
(channels, *spatial) input resized to ``size`` or by ``scale`` (each output size floor(size x scale),
as torch computes it), the channels kept.

Other ops per output element: a k-tap weighted sum costs k multiplies and k - 1 adds, with k = 2
(linear), 4 (bilinear) and 16 (bicubic): 3, 7 and 31 ops; nearest and nearest-exact copy one
element: 1 op. Nothing is kept for backward (the gradient needs sizes and scales only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from scalelab.blocks.layers.axes import describe
from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, elements, fresh_output, no_macs, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

#: each mode: (the spatial axes it resizes, or None for 1 to 3; ops per output element)
MODES = {"nearest": (None, 1), "nearest-exact": (None, 1), "linear": (1, 3), "bilinear": (2, 7), "bicubic": (2, 31)}


@register
@dataclass(frozen=True)
class Interpolate(Primitive):
    """``size`` or ``scale`` (one value for every spatial axis, or one per axis), not both;
    ``align_corners`` for the linear modes only (None: torch's default)."""

    kind = "interpolate"
    mode: str
    size: Optional[tuple[int, ...]] = None
    scale: Optional[tuple[float, ...]] = None
    align_corners: Optional[bool] = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown interpolation mode '{self.mode}'; one of {', '.join(MODES)}")
        if (self.size is None) == (self.scale is None):
            raise ValueError("interpolate takes a size or a scale factor, one of the two")
        if self.align_corners is not None and self.mode.startswith("nearest"):
            raise ValueError(f"align_corners applies to the linear modes, not {self.mode}")

    def out_shape(self, s: Shape) -> Shape:
        k = len(s) - 1
        wanted = MODES[self.mode][0]
        if k < 1 or (wanted is not None and k != wanted) or k > 3:
            needs = f"{wanted} spatial" if wanted is not None else "1 to 3 spatial"
            raise ShapeError(f"{self.mode} interpolation takes (channels, *spatial) with {needs} axes, "
                             f"got {describe(s)}")
        given = self.size if self.size is not None else self.scale
        assert given is not None  # __post_init__: one of the two
        if len(given) not in (1, k):
            raise ShapeError(f"interpolate gives {len(given)} sizes or scales for the {k} spatial axes of {describe(s)}")
        per_axis = given * k if len(given) == 1 else given
        if self.size is not None:
            sizes = tuple(int(n) for n in per_axis)
        else:
            sizes = tuple(math.floor(float(n) * f) for n, f in zip(s[1:], per_axis))
        if min(sizes) < 1:
            raise ShapeError(f"interpolating {describe(s)} by {list(per_axis)} leaves an empty axis")
        return (s[0], *sizes)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost(self.mode, ops=MODES[self.mode][1] * elements(out), in_elems=elements(s),
                         out_elems=elements(out), node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved()

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None  # a gather of a few neighbours per output element

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.resample_torch import Interpolate as Module  # torch: only when a module is built

        return Module(self.mode, self.size, self.scale, self.align_corners)
