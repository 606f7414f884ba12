"""Activation functions: the one list of their names, op counts, saved tensors and torch modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, elements, fresh_output, no_macs, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn


class Function(NamedTuple):
    ops: int  # per element, from the defining formula
    saves: str  # "in" or "out": what torch's derivative formula (derivatives.yaml) keeps
    torch_name: str  # the torch.nn class


#: every activation scalelab knows; block kinds take their names from here
ACTIVATIONS = {
    "relu": Function(1, "out", "ReLU"),  # max(x, 0)
    "relu6": Function(2, "in", "ReLU6"),  # min(max(x, 0), 6): hardtanh's backward takes the input
    "sigmoid": Function(4, "out", "Sigmoid"),  # 1 / (1 + exp(-x)): negate, exp, add, divide
    "tanh": Function(5, "out", "Tanh"),  # (exp(2x) - 1) / (exp(2x) + 1)
    "silu": Function(5, "in", "SiLU"),  # x * sigmoid(x), a.k.a. swish
    "hardsigmoid": Function(4, "in", "Hardsigmoid"),  # relu6(x + 3) / 6
    "hardswish": Function(5, "in", "Hardswish"),  # x * hardsigmoid(x)
    "gelu": Function(5, "in", "GELU"),  # x * (1 + erf(x / sqrt(2))) / 2: divide, erf, add, multiply, halve
}


@register
@dataclass(frozen=True)
class Activation(Primitive):
    kind = "activation"

    fn: str

    def __post_init__(self) -> None:
        if self.fn not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{self.fn}'; one of {', '.join(ACTIVATIONS)}")

    def out_shape(self, s: Shape) -> Shape:
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost(self.fn, ops=ACTIVATIONS[self.fn].ops * n, in_elems=n, out_elems=n, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        keeps = ACTIVATIONS[self.fn].saves
        return Saved(input=keeps == "in", output=keeps == "out")

    inner_peak = fresh_output  # not in place: scalelab.build makes nn.ReLU() etc. without inplace

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from torch import nn

        return getattr(nn, ACTIVATIONS[self.fn].torch_name)()
