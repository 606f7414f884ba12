"""A learned scale per feature of the last axis (timm's ``LayerScale`` in ViT, DeiT III and CaiT:
``x * gamma``, gamma of shape (features,)), for token tensors (..., tokens, features); the
channels-first form of ConvNeXt is ``modern.LayerScale``. Its torch module is in ``token_scale_torch``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, elements, fmt_shape, fresh_output, no_macs, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn


@register
@dataclass(frozen=True)
class TrailingLayerScale(Primitive):
    """``x * gamma`` with one learned gamma per feature of the last axis: ``features`` parameters,
    one multiply per element."""

    kind = "layerscale_trailing"
    has_weights = True

    features: int
    init: float = 1e-5

    def out_shape(self, s: Shape) -> Shape:
        if not s or s[-1] != self.features:
            raise ShapeError(f"layer scale of {self.features} features needs a last axis of {self.features}, "
                             f"got {fmt_shape(s) or 'a scalar'}")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost("layerscale", params=self.features, ops=n, in_elems=n, out_elems=n, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        # x * gamma: the input's gradient needs gamma (a parameter), gamma's needs the input
        return Saved(input=weights_trained)

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.token_scale_torch import TrailingLayerScale as Module  # torch: only when built

        return Module(self.features, self.init)
