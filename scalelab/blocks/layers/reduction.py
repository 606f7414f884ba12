"""Reductions over axes (sum, mean, max, min, p-norm, variance, standard deviation) and softmax.

Other ops by formula, with n the input and m the output elements:

=========  ================  ==============================================================
sum        n                 one add per input element
amax/amin  n                 one compare per input element
mean       n + m             the sum, then a divide per output
norm       2n + m            \\|x\\|^p and an add per input element, the p-th root per output
var        4n + 2m           the mean (n + m), then x - mean, its square and an add per input
                             element, and a divide per output
std        4n + 3m           the variance, then a root per output
softmax    5n                max, subtract, exp, sum, divide per element
log        5n + n / size     max, subtract, exp, sum, subtract per element, a log per row
=========  ================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.axes import axes, axis
from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, elements, fresh_output, no_macs, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

#: each reduction: (other ops per input element, per output element, what autograd keeps)
REDUCTIONS = {
    "sum": (1, 0, ""), "mean": (1, 1, ""), "amax": (1, 0, "in+out"), "amin": (1, 0, "in+out"),
    "norm": (2, 1, "in+out"), "var": (4, 2, "in"), "std": (4, 3, "in+out"),
}


@register
@dataclass(frozen=True)
class Reduce(Primitive):
    """``op`` over the axes ``dims``, kept as size 1 with ``keepdim``; ``p`` is norm's order (inf:
    the largest magnitude), ``correction`` var's and std's (1: Bessel's)."""

    kind = "reduce"
    op: str
    dims: tuple[int, ...]
    keepdim: bool = False
    p: float = 2.0
    correction: float = 1.0

    def __post_init__(self) -> None:
        if self.op not in REDUCTIONS:
            raise ValueError(f"unknown reduction '{self.op}'; one of {', '.join(REDUCTIONS)}")
        if not self.dims:
            raise ValueError("a reduction needs the axes it reduces (dims)")

    def out_shape(self, s: Shape) -> Shape:
        gone = set(axes(self.dims, s, f"reduce {self.op}"))
        if self.keepdim:
            return tuple(1 if i in gone else n for i, n in enumerate(s))
        return tuple(n for i, n in enumerate(s) if i not in gone)

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        per_in, per_out, _ = REDUCTIONS[self.op]
        n, m = elements(s), elements(out)
        return LayerCost(self.op, ops=per_in * n + per_out * m, in_elems=n, out_elems=m, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        keeps = REDUCTIONS[self.op][2]
        return Saved(input="in" in keeps, output="out" in keeps)

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.POOL, None  # a reduction, as global pooling is

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.reduction_torch import Reduce as Module  # torch: only when a module is built

        return Module(self.op, self.dims, self.keepdim, self.p, self.correction)


@register
@dataclass(frozen=True)
class Softmax(Primitive):
    """exp(x) / sum(exp(x)) along ``dim`` (its logarithm with ``log``), computed after subtracting
    the row's maximum as torch does."""

    kind = "softmax"
    dim: int
    log: bool = False

    def out_shape(self, s: Shape) -> Shape:
        axis(self.dim, s, "log_softmax" if self.log else "softmax")
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        rows = n // s[axis(self.dim, s, "softmax")] if self.log else 0  # a log per row
        return LayerCost("log_softmax" if self.log else "softmax", ops=5 * n + rows, in_elems=n, out_elems=n,
                         node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved(output=True)  # both gradients are formed from the output

    inner_peak = fresh_output

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.NORM, None  # row statistics, then an element-wise pass, as a norm

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.reduction_torch import Softmax as Module  # torch: only when a module is built

        return Module(self.dim, self.log)
