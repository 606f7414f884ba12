"""Fully connected layer over the last axis of an input of any rank: every face."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, TrainMacs, elements, fmt_shape, fresh_output,
    register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn


@register
@dataclass(frozen=True)
class Linear(Primitive):
    """Fully connected layer over the last axis (torch's nn.Linear): every leading axis is kept, each
    row of ``in_features`` maps to ``out_features``. MACs = (output elements) * in, bias excluded;
    one add per output element for the bias. The input is taken to be contiguous, as scalelab's
    tensors are unless a ``contiguous`` copy says otherwise: torch folds it into a matrix by a view.
    ``bias_zeroed`` (start, stop): that slice of the bias is zeroed on every pass (Swin V2's qkv, whose
    keys take no bias): still parameters; weight ops per pass, the bias copied and the slice zeroed."""

    kind = "linear"
    has_weights = True

    in_features: int
    out_features: int
    bias: bool = True
    bias_zeroed: Optional[tuple[int, int]] = None

    def out_shape(self, s: Shape) -> Shape:
        if not s or s[-1] != self.in_features:
            raise ShapeError(f"linear expects {self.in_features} features on the last axis, got {fmt_shape(s)}")
        return (*s[:-1], self.out_features)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(out)
        return LayerCost(
            "linear",
            params=self.in_features * self.out_features + (self.out_features if self.bias else 0),
            macs=n * self.in_features,
            ops=n if self.bias else 0,
            in_elems=elements(s),
            out_elems=n,
            weight_ops=self.out_features + self.bias_zeroed[1] - self.bias_zeroed[0] if self.bias_zeroed else 0,
            node=self,
        )

    def train_macs(self, s: Shape, out: Shape) -> TrainMacs:
        """Forward x W^T, input gradient g W, weight gradient g^T x: rows * in * out each, per sample."""
        macs = elements(out) * self.in_features
        return TrainMacs(forward=macs, grad_input=macs, grad_weight=macs)

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved(input=weights_trained)  # the input gradient needs only the weight

    inner_peak = fresh_output  # addmm (or mm and an in-place bias add) writes the output only

    def latency(self) -> tuple[LatencyClass, int]:
        return LatencyClass.LINEAR, self.out_features

    def torch_module(self) -> nn.Module:
        from torch import nn

        if self.bias_zeroed:
            from scalelab.blocks.layers.linear_torch import ZeroedBiasLinear  # torch: only when a module is built

            return ZeroedBiasLinear(self.in_features, self.out_features, self.bias_zeroed)
        return nn.Linear(self.in_features, self.out_features, self.bias)
