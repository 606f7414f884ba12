"""Layers that move or reshape data without arithmetic: flatten and ResNet's zero-padding shortcut."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, allocates_nothing, elements, fresh_output,
    no_macs, register, spatial, view_of_input,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn


@register
@dataclass(frozen=True)
class Flatten(Primitive):
    """A view of its contiguous input: no kernel, no new storage."""

    kind = "flatten"

    def out_shape(self, s: Shape) -> Shape:
        return (elements(s),)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("flatten", in_elems=elements(s), out_elems=elements(s), node=self)

    train_macs = no_macs

    saved = view_of_input

    inner_peak = allocates_nothing

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.FREE, None

    def torch_module(self) -> nn.Module:
        from torch import nn

        return nn.Flatten()


@register
@dataclass(frozen=True)
class ZeroPadShortcut(Primitive):
    """ResNet option A shortcut (He et al. 2016, §4.2): subsample by the stride and append
    zero channels. No parameters; one copy per output element."""

    kind = "zeropad"

    stride: int
    out_ch: int

    def out_shape(self, s: Shape) -> Shape:
        c, h, w = spatial(s, "zero-padding shortcut")
        if self.out_ch < c:
            raise ShapeError(f"a zero-padding shortcut cannot shrink {c} channels to {self.out_ch}")
        return (self.out_ch, -(-h // self.stride), -(-w // self.stride))

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost("zeropad", ops=elements(out), in_elems=elements(s), out_elems=elements(out), node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved()  # slicing and constant padding keep only sizes

    inner_peak = fresh_output  # the strided slice is a view; the padding writes the output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.torch_modules import ZeroPadShortcut as Module  # torch: only when a module is built

        return Module(self.stride, self.out_ch)
