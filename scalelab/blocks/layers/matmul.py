"""The matrix product of two inputs, ``matmul`` (torch.matmul on per-sample shapes), every face; its
torch module is in ``matmul_torch`` (scaled dot-product attention is ``attention``).

It takes its inputs' shapes as a list. Its training walk (``train``) states which inputs autograd
keeps and which gradients it computes from each input's own need for one: the gradient of one factor
of a product needs the other factor."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.base import (
    InnerPeak, LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, TrainMacs, elements, fmt_shape, register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


def broadcast_leading(a: Shape, b: Shape, what: str) -> Shape:
    """The leading (batch-like) axes of two operands broadcast as torch broadcasts them."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x, y = (a[-i] if i <= len(a) else 1), (b[-i] if i <= len(b) else 1)
        if x != y and 1 not in (x, y):
            raise ShapeError(f"{what}: the leading axes {fmt_shape(a)} and {fmt_shape(b)} do not broadcast")
        out.append(max(x, y) if 1 not in (x, y) else x * y)
    return tuple(reversed(out))


@dataclass(frozen=True)
class Operands:
    """Two matmul operands as torch.matmul sees them: a 1-d one promoted to a matrix, the leading axes
    broadcast; ``rows x inner`` times ``inner x cols`` for each of ``lead``."""

    lead: Shape
    rows: int
    inner: int
    cols: int
    copies: tuple[int, int]  # elements of the broadcast copy autograd's matmul makes of a and of b (0: a view)
    out: Shape

    @classmethod
    def of(cls, shapes: list[Shape]) -> "Operands":
        if len(shapes) != 2 or not all(shapes):
            raise ShapeError(f"matmul takes two inputs of rank 1 or more, got {' and '.join(map(fmt_shape, shapes))}")
        a, b = shapes
        a2 = (1, *a) if len(a) == 1 else a  # torch.matmul: a vector on the left is a row
        b2 = (*b, 1) if len(b) == 1 else b  # and on the right a column
        if a2[-1] != b2[-2]:
            raise ShapeError(f"matmul of {fmt_shape(a)} and {fmt_shape(b)}: {a2[-1]} columns against {b2[-2]} rows")
        lead = broadcast_leading(a2[:-2], b2[:-2], "matmul")
        n, k, m = a2[-2], a2[-1], b2[-1]
        # torch expands an operand to the broadcast leading axes and folds them into one: a copy
        # unless it already has them all
        copies = tuple(0 if x[:-2] == lead else math.prod(lead) * x[-2] * x[-1] for x in (a2, b2))
        out = (*lead, *((n,) if len(a) > 1 else ()), *((m,) if len(b) > 1 else ()))
        return cls(lead, n, k, m, copies, out)  # type: ignore[arg-type]  # two copies

    @property
    def macs(self) -> int:
        return math.prod(self.lead) * self.rows * self.inner * self.cols


@register
@dataclass(frozen=True)
class Matmul(Primitive):
    """torch.matmul of two inputs on per-sample shapes: a (..., n, k) @ b (..., k, m) -> (..., n, m),
    a 1-d operand a row (left) or a column (right) dropped from the output, leading axes broadcast.
    MACs = prod(leading) * n * k * m; the gradient of each operand is one more such product."""

    kind = "matmul"

    def out_shape(self, s: list[Shape]) -> Shape:  # type: ignore[override]  # two inputs' shapes
        return Operands.of(list(s)).out

    def cost(self, s: list[Shape], out: Shape) -> LayerCost:  # type: ignore[override]
        return LayerCost("matmul", macs=Operands.of(s).macs, in_elems=sum(elements(x) for x in s),
                         out_elems=elements(out), node=self)

    def grad_macs(self, s: list[Shape], grads: tuple[bool, ...]) -> TrainMacs:
        """Forward, and the input gradients of those operands that need one."""
        macs = Operands.of(s).macs
        return TrainMacs(forward=macs, grad_input=macs * sum(grads))

    def train_macs(self, s: list[Shape], out: Shape) -> TrainMacs:  # type: ignore[override]
        return self.grad_macs(s, (True, True))  # both operands need a gradient (``train`` asks each)

    def kept(self, grads: tuple[bool, ...]) -> tuple[bool, bool]:
        """a is kept for b's gradient, b for a's (derivatives.yaml: bmm)."""
        return grads[1], grads[0]

    def saved(self, s: list[Shape], out: Shape, weights_trained: bool,  # type: ignore[override]
              input_grad: "bool | tuple[bool, ...]", device: str) -> Saved:
        """What is kept for the given need of each input (one flag: both); an operand torch copies to
        broadcast it is kept as that copy."""
        grads = input_grad if isinstance(input_grad, tuple) else (input_grad, input_grad)
        ops = Operands.of(s)
        keep = self.kept(grads)
        copies = sum(c for c, k in zip(ops.copies, keep) if k and c)
        return Saved(inputs=tuple(k and not c for c, k in zip(ops.copies, keep)), per_sample_elements=copies)

    def inner_peak(self, s: list[Shape], out: Shape) -> InnerPeak:  # type: ignore[override]
        n = elements(out)  # in inference mode no broadcast copy is made (measured): the output only
        return InnerPeak(out, n, n)

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.LINEAR, None  # a batched matrix product: no fixed width for the thin-kernel rule

    def train(self, walker: TrainWalk, xs: list[Tensor]) -> Tensor:  # type: ignore[override]
        return walker.several(self, xs, self.out_shape([t.shape for t in xs]))

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers.matmul_torch import Matmul as Module  # torch: only when a module is built

        return Module()
