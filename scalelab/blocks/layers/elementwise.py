"""Element-wise operations: one input with an optional scalar (``x.exp()``, ``x * 0.5``,
``x.clamp(0, 6)``), and two inputs broadcast as torch broadcasts them (``a * b``, ``a - 2 * b``).

Each operation states its other ops per output element (the operations of its defining formula, a
transcendental function counting one, as the activations count them) and what torch's autograd
keeps for its backward (derivatives.yaml, checked with saved_tensors_hooks in
tests/test_tensor_ops.py). None has multiply-accumulates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Optional

from scalelab.blocks.layers.axes import broadcast
from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, elements, no_macs, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


class UnaryOp(NamedTuple):
    ops: int  # other ops per element
    saves: str  # what autograd keeps: "" nothing, "in" the input, "out" the output, "tmp" an intermediate


#: the one-input operations; the ``scalar`` ones take ``x op scalar`` (rsub: s - x, rdiv: s / x)
UNARY = {
    "neg": UnaryOp(1, ""), "abs": UnaryOp(1, "in"), "exp": UnaryOp(1, "out"), "log": UnaryOp(1, "in"),
    "sqrt": UnaryOp(1, "out"),
    "rsqrt": UnaryOp(2, "out"),  # 1 / sqrt(x): a root and a divide
    "reciprocal": UnaryOp(1, "out"),
    "square": UnaryOp(1, "in"),  # x * x
    "sign": UnaryOp(1, ""), "floor": UnaryOp(1, ""), "ceil": UnaryOp(1, ""), "round": UnaryOp(1, ""),
    "erf": UnaryOp(1, "in"), "sin": UnaryOp(1, "in"), "cos": UnaryOp(1, "in"),
}
SCALAR = {
    "add": UnaryOp(1, ""), "sub": UnaryOp(1, ""), "rsub": UnaryOp(1, ""), "mul": UnaryOp(1, ""),
    "div": UnaryOp(1, ""),
    "rdiv": UnaryOp(2, "tmp"),  # torch runs s / x as x.reciprocal() * s: the reciprocal is kept
    "pow": UnaryOp(1, "in"),
    "fmod": UnaryOp(4, ""),  # x - trunc(x / s) * s: divide, truncate, multiply, subtract
    "remainder": UnaryOp(4, ""),  # x - floor(x / s) * s
}
#: every ``unary`` operation: the plain ones, the scalar ones, and clamp (one compare per bound)
UNARY_OPS = (*UNARY, *SCALAR, "clamp")


@register
@dataclass(frozen=True)
class Unary(Primitive):
    """``op`` on every element: ``UNARY`` alone, ``SCALAR`` with ``scalar``, clamp within ``low``
    and ``high`` (either may be None, not both)."""

    kind = "unary"
    op: str
    scalar: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None

    def __post_init__(self) -> None:
        if self.op not in UNARY_OPS:
            raise ValueError(f"unknown unary operation '{self.op}'; one of {', '.join(UNARY_OPS)}")
        if (self.scalar is not None) != (self.op in SCALAR):
            raise ValueError(f"unary '{self.op}' {'needs' if self.op in SCALAR else 'takes no'} scalar")
        if self.op == "clamp" and self.low is None and self.high is None:
            raise ValueError("clamp needs a lower or an upper bound")

    def _op(self) -> UnaryOp:
        if self.op == "clamp":
            return UnaryOp((self.low is not None) + (self.high is not None), "in")  # a compare per bound
        return UNARY[self.op] if self.op in UNARY else SCALAR[self.op]

    def out_shape(self, s: Shape) -> Shape:
        return s

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        n = elements(s)
        return LayerCost(self.op, ops=self._op().ops * n, in_elems=n, out_elems=n, node=self)

    train_macs = no_macs

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        keeps = self._op().saves
        return Saved(input=keeps == "in", output=keeps == "out", per_sample_elements=elements(s) if keeps == "tmp" else 0)

    def inner_peak(self, s: Shape, out: Shape) -> InnerPeak:
        n = elements(out)
        return InnerPeak(out, n, 2 * n if self.op == "rdiv" else n)  # rdiv: the reciprocal, then the product

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.elementwise_torch import Unary as Module  # torch: only when a module is built

        return Module(self.op, self.scalar, self.low, self.high)


#: the two-input operations a op b; ``alpha`` scales b in add and sub (a + alpha * b)
BINARY_OPS = ("add", "sub", "mul", "div", "maximum", "minimum", "pow")


@register
@dataclass(frozen=True)
class Binary(Primitive):
    """``a op b`` on two inputs broadcast as torch broadcasts them (per-sample shapes): one op per
    output element, two for add and sub with an ``alpha`` other than 1 (a multiply, then the sum)."""

    kind = "binary"
    op: str
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.op not in BINARY_OPS:
            raise ValueError(f"unknown binary operation '{self.op}'; one of {', '.join(BINARY_OPS)}")
        if self.alpha != 1 and self.op not in ("add", "sub"):
            raise ValueError(f"alpha scales the second input of add and sub only, not {self.op}")

    def out_shape(self, s: list[Shape]) -> Shape:  # type: ignore[override]  # two inputs' shapes
        if len(s) != 2:
            raise ShapeError(f"binary {self.op} takes two inputs (a {self.op} b), got {len(s)}")
        return broadcast(s, f"binary {self.op}")

    def cost(self, s: list[Shape], out: Shape) -> LayerCost:  # type: ignore[override]
        n = elements(out)
        ops = 2 * n if self.alpha != 1 else n
        return LayerCost(self.op, ops=ops, in_elems=sum(elements(x) for x in s), out_elems=n, node=self)

    train_macs = no_macs  # it reads neither shape

    def kept(self, grads: tuple[bool, bool]) -> tuple[bool, bool, bool]:
        """Whether autograd keeps a, b and the output, given which of a and b need a gradient
        (derivatives.yaml: mul's gradient for a needs b and for b needs a; div's for a needs b, for b
        both; maximum and minimum compare both; pow keeps a, b and its output whichever needs one)."""
        a, b = grads
        if self.op == "mul":
            return b, a, False
        if self.op == "div":
            return b, a or b, False
        if self.op in ("maximum", "minimum"):
            return True, True, False
        if self.op == "pow":
            return True, True, True
        return False, False, False  # add, sub: the gradient is the incoming one (times alpha)

    def saved(self, s: list[Shape], out: Shape, weights_trained: bool, input_grad: bool,  # type: ignore[override]
              device: str) -> Saved:
        """What is kept when both inputs need a gradient ``input_grad`` (the training walk asks
        ``kept`` with each input's own need, and keeps a tensor used twice once)."""
        keep_a, keep_b, keep_out = self.kept((input_grad, input_grad))
        return Saved(output=keep_out, per_sample_elements=elements(s[0]) * keep_a + elements(s[1]) * keep_b)

    def inner_peak(self, s: list[Shape], out: Shape) -> InnerPeak:  # type: ignore[override]
        n = elements(out)
        return InnerPeak(out, n, n)

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def train(self, walker: TrainWalk, xs: list[Tensor]) -> Tensor:  # type: ignore[override]
        out = walker.joined(self.out_shape([t.shape for t in xs]), xs)
        if out.grad:  # autograd records the operation only when an input needs a gradient
            keep_a, keep_b, keep_out = self.kept((xs[0].grad, xs[1].grad))
            for t, keep in ((xs[0], keep_a), (xs[1], keep_b), (out, keep_out)):
                if keep:
                    walker.keep(t)
        return out

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.elementwise_torch import Binary as Module  # torch: only when a module is built

        return Module(self.op, self.alpha)
