"""Views: a new shape or order of axes over the input's storage, as torch's ``view``, ``permute``,
``expand``, slicing and indexing give it. No kernel runs and nothing is allocated or kept for
backward (their gradients need sizes only): each costs nothing, and says so (``LatencyClass.FREE``).

``Reshape`` is a view of a contiguous input, as the importer writes it; where torch's reshape would
copy (after a permute or an expand), a ``Contiguous`` copy comes first, and the built module refuses
a reshape it cannot view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from scalelab.blocks.layers.axes import axes, axis, describe
from scalelab.blocks.layers.base import (
    LatencyClass, LayerCost, Primitive, Shape, ShapeError, allocates_nothing, elements, no_macs, register,
    view_of_input,
)

if TYPE_CHECKING:  # pragma: no cover - annotations only: the analysis path imports no torch
    from torch import nn


class View(Primitive):
    """The faces every view shares: no ops, no new storage, nothing saved, no kernel."""

    def cost(self, s: Shape, out: Shape) -> LayerCost:
        return LayerCost(self.kind, in_elems=elements(s), out_elems=elements(out), node=self)

    train_macs = no_macs
    saved = view_of_input
    inner_peak = allocates_nothing

    def latency(self) -> tuple[LatencyClass, None]:
        return LatencyClass.FREE, None

    def torch_module(self) -> nn.Module:
        from scalelab.blocks.layers import views_torch  # torch: only when a module is built

        return views_torch.View(self)


@register
@dataclass(frozen=True)
class Reshape(View):
    """The same elements in ``shape`` (one size may be -1: whatever the others leave)."""

    kind = "reshape"
    shape: tuple[int, ...]

    def out_shape(self, s: Shape) -> Shape:
        n, known = elements(s), elements(tuple(d for d in self.shape if d != -1))
        wanted = "x".join(str(d) for d in self.shape) or "a scalar (rank 0)"
        if -1 in self.shape:
            if known == 0 or n % known:
                raise ShapeError(f"cannot reshape {describe(s)} ({n:,} elements) to {wanted}: "
                                 f"{n:,} is no multiple of {known:,}")
            return tuple(n // known if d == -1 else d for d in self.shape)
        if known != n:
            raise ShapeError(f"cannot reshape {describe(s)} ({n:,} elements) to {wanted} ({known:,} elements)")
        return self.shape


@register
@dataclass(frozen=True)
class Permute(View):
    """The axes in the order ``dims`` (output axis i is input axis ``dims[i]``)."""

    kind = "permute"
    dims: tuple[int, ...]

    def out_shape(self, s: Shape) -> Shape:
        if len(self.dims) != len(s):
            raise ShapeError(f"permute dims {list(self.dims)} must name each of the {len(s)} axes of {describe(s)} once")
        return tuple(s[d] for d in axes(self.dims, s, "permute"))


@register
@dataclass(frozen=True)
class Expand(View):
    """Size-1 axes repeated to ``shape`` without copying (-1 keeps an axis; new axes come first)."""

    kind = "expand"
    shape: tuple[int, ...]

    def out_shape(self, s: Shape) -> Shape:
        new = len(self.shape) - len(s)
        if new < 0:
            raise ShapeError(f"cannot expand {describe(s)} to fewer axes ({len(self.shape)})")
        out = []
        for i, size in enumerate(self.shape):
            old = s[i - new] if i >= new else None
            if size == -1 and old is None:
                raise ShapeError(f"expand: -1 keeps an existing axis; new axis {i} needs a size")
            if size != -1 and old not in (None, 1, size):
                raise ShapeError(f"cannot expand {describe(s)} to {'x'.join(map(str, self.shape))}: axis {i} "
                                 f"has size {old}, and only size 1 expands")
            out.append(old if size == -1 else size)
        return tuple(out)  # type: ignore[arg-type]  # -1 stands only where an axis exists


@register
@dataclass(frozen=True)
class Slice(View):
    """``x[start:stop:step]`` along ``dim``, with Python's rules (negative counts from the end,
    bounds past the ends are clipped)."""

    kind = "slice"
    dim: int
    start: Optional[int] = None
    stop: Optional[int] = None
    step: int = 1

    def indices(self, s: Shape) -> range:
        size = s[axis(self.dim, s, "slice")]
        return range(*slice(self.start, self.stop, self.step).indices(size))

    def out_shape(self, s: Shape) -> Shape:
        taken = len(self.indices(s))
        d = axis(self.dim, s, "slice")
        if taken == 0:
            bounds = ":".join("" if v is None else str(v) for v in (self.start, self.stop))
            raise ShapeError(f"slice [{bounds}:{self.step}] of axis {d} (size {s[d]}) of {describe(s)} is empty")
        return (*s[:d], taken, *s[d + 1:])


@register
@dataclass(frozen=True)
class Select(View):
    """Element ``index`` of axis ``dim``; the axis goes away."""

    kind = "select"
    dim: int
    index: int

    def out_shape(self, s: Shape) -> Shape:
        d = axis(self.dim, s, "select")
        if not -s[d] <= self.index < s[d]:
            raise ShapeError(f"select: index {self.index} is out of range for axis {d} of {describe(s)} "
                             f"(size {s[d]})")
        return (*s[:d], *s[d + 1:])
