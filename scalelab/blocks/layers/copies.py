"""Copies: operations that write their input's elements (or fill values) to a new tensor, one op
per output element and no arithmetic: roll, a contiguous copy, concatenation and stacking of
several inputs along an axis, and padding. Their backward needs sizes only, except reflect and
replicate padding, whose torch kernels keep the input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalelab.blocks.layers.axes import axes, axis, describe
from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Saved, Shape, ShapeError, elements, fresh_output, no_macs,
    register,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn

    from scalelab.analysis.train_walk import Tensor, TrainWalk


class Copy(Primitive):
    """The faces every copy shares: one op per output element, a fresh output, an element-wise kernel."""

    def cost(self, s: "Shape | list[Shape]", out: Shape) -> LayerCost:
        n_in = sum(elements(x) for x in s) if isinstance(s, list) else elements(s)
        return LayerCost(self.kind, ops=elements(out), in_elems=n_in, out_elems=elements(out), node=self)

    train_macs = no_macs
    inner_peak = fresh_output

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved()  # the gradient is the incoming one moved back: sizes only

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.ELEMENTWISE, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers import copies_torch  # torch: only when a module is built

        return copies_torch.Copy(self)


@register
@dataclass(frozen=True)
class Roll(Copy):
    """Elements shifted along ``dims`` by ``shifts``, wrapping around (``torch.roll``)."""

    kind = "roll"
    shifts: tuple[int, ...]
    dims: tuple[int, ...]

    def out_shape(self, s: Shape) -> Shape:
        if len(self.shifts) != len(self.dims) or not self.dims:
            raise ShapeError(f"roll needs one shift per dim, got shifts {list(self.shifts)} and dims {list(self.dims)}")
        axes(self.dims, s, "roll")
        return s


@register
@dataclass(frozen=True)
class Contiguous(Copy):
    """A copy to contiguous memory: where torch copies a permuted or expanded tensor before a view."""

    kind = "contiguous"

    def out_shape(self, s: Shape) -> Shape:
        return s


class Join(Copy):
    """Several inputs copied into one output (``from:`` names them; any number from two)."""

    def out_shape(self, s: list[Shape]) -> Shape:  # type: ignore[override]  # the inputs' shapes
        if len(s) < 2:
            raise ShapeError(f"{self.kind} joins two or more inputs, got {len(s)}")
        return self.joined(s)

    def joined(self, s: list[Shape]) -> Shape:
        raise NotImplementedError  # pragma: no cover - each join defines it

    def saved(self, s: list[Shape], out: Shape, weights_trained: bool, input_grad: bool,  # type: ignore[override]
              device: str) -> Saved:
        return Saved()  # each input's gradient is a slice of the output's: sizes only

    def train(self, walker: TrainWalk, xs: list[Tensor]) -> Tensor:  # type: ignore[override]
        return walker.joined(self.out_shape([t.shape for t in xs]), xs)  # keeps only sizes


@register
@dataclass(frozen=True)
class Cat(Join):
    """Inputs concatenated along ``dim``: equal in every other axis (``torch.cat``)."""

    kind = "cat"
    dim: int = 0

    def joined(self, s: list[Shape]) -> Shape:
        first = s[0]
        d = axis(self.dim, first, "cat")
        for other in s[1:]:
            if len(other) != len(first) or other[:d] + other[d + 1:] != first[:d] + first[d + 1:]:
                raise ShapeError(f"cannot concatenate {describe(first)} and {describe(other)} along axis {d}: "
                                 f"every other axis must agree")
        return (*first[:d], sum(x[d] for x in s), *first[d + 1:])


@register
@dataclass(frozen=True)
class Stack(Join):
    """Inputs of one shape stacked along a new axis ``dim`` (``torch.stack``)."""

    kind = "stack"
    dim: int = 0

    def joined(self, s: list[Shape]) -> Shape:
        first = s[0]
        for other in s[1:]:
            if other != first:
                raise ShapeError(f"cannot stack {describe(first)} and {describe(other)}: the shapes must be equal")
        d = axis(self.dim, first, "stack", extra=1)
        return (*first[:d], len(s), *first[d:])


#: padding modes, as torch.nn.functional.pad names them
PAD_MODES = ("constant", "reflect", "replicate", "circular")


@register
@dataclass(frozen=True)
class Pad(Copy):
    """``pad`` as torch orders it: (left, right) of the last axis, then of the one before, ...;
    ``constant`` fills ``value`` (a negative pad crops), the other modes repeat the input's edges."""

    kind = "pad"
    pad: tuple[int, ...]
    mode: str = "constant"
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in PAD_MODES:
            raise ValueError(f"unknown padding mode '{self.mode}'; one of {', '.join(PAD_MODES)}")
        if not self.pad or len(self.pad) % 2:
            raise ValueError(f"pad takes a (before, after) pair per axis, got {list(self.pad)}")

    def out_shape(self, s: Shape) -> Shape:
        k = len(self.pad) // 2
        if k > len(s):
            raise ShapeError(f"pad {list(self.pad)} pads {k} axes; {describe(s)} has {len(s)}")
        if self.mode != "constant":
            self._check_edges(s, k)
        out = list(s)
        for i in range(k):
            d = len(s) - 1 - i
            out[d] = s[d] + self.pad[2 * i] + self.pad[2 * i + 1]
            if out[d] < 1:
                raise ShapeError(f"pad {list(self.pad)} leaves axis {d} of {describe(s)} empty")
        return tuple(out)

    def _check_edges(self, s: Shape, k: int) -> None:
        """torch pads 1 to 3 trailing axes in these modes, each side by less than the axis (reflect)
        or at most the axis (circular), never by a negative amount."""
        if k > 3 or len(s) > k + 1:
            raise ShapeError(f"{self.mode} padding pads the last 1 to 3 axes of an input with at most one more "
                             f"(channels); pad {list(self.pad)} on {describe(s)} is not one torch runs")
        for i, amount in enumerate(self.pad):
            size = s[len(s) - 1 - i // 2]
            limit = {"reflect": size - 1, "circular": size}.get(self.mode)
            if amount < 0 or (limit is not None and amount > limit):
                raise ShapeError(f"{self.mode} padding {amount} is too large for an axis of {size} "
                                 f"(of {describe(s)})" if amount >= 0 else f"{self.mode} padding cannot be negative")

    def saved(self, s: Shape, out: Shape, weights_trained: bool, input_grad: bool, device: str) -> Saved:
        return Saved(input=self.mode in ("reflect", "replicate"))  # their backward kernels take the input
