"""Fully connected layer: every face."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, TrainMacs, fmt_shape, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn


@register
@dataclass(frozen=True)
class Linear(Primitive):
    """Fully connected layer on a vector. MACs = in * out."""

    kind = "linear"
    has_weights = True

    in_features: int
    out_features: int
    bias: bool = True

    def out_shape(self, s: Shape) -> Shape:
        if len(s) != 1 or s[0] != self.in_features:
            raise ShapeError(f"linear expects a vector of {self.in_features}, got {fmt_shape(s)}")
        return (self.out_features,)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost(
            "linear",
            params=self.in_features * self.out_features + (self.out_features if self.bias else 0),
            macs=self.in_features * self.out_features,
            ops=self.out_features if self.bias else 0,
            in_elems=self.in_features,
            out_elems=self.out_features,
            node=self,
        )

    def train_macs(self, s: Shape, out: Shape) -> TrainMacs:
        """Forward x W^T, input gradient g W, weight gradient g^T x: in * out each, per sample."""
        macs = self.in_features * self.out_features
        return TrainMacs(forward=macs, grad_input=macs, grad_weight=macs)

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved(input=weights_trained)  # the input gradient needs only the weight

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        return InnerPeak(out, self.out_features, self.out_features)

    def latency(self) -> tuple[LatencyClass, int]:
        return LatencyClass.LINEAR, self.out_features

    def torch_module(self) -> nn.Module:
        from torch import nn

        return nn.Linear(self.in_features, self.out_features, self.bias)
