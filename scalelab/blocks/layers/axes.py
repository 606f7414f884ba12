"""Axes of per-sample shapes as torch reads them: a ``dim`` counts per-sample axes from 0 (negative
from the end), and two shapes broadcast by torch's rule. The tensor operations (views, copies,
reductions, element-wise operations) share these rules and their error messages.

A built module sees every tensor with a leading batch axis (of the batch size, or of 1 for a tensor
shared by the whole batch), so a per-sample axis ``d >= 0`` is torch's ``d + 1`` and a negative one
is the same on both sides (``batched``).
"""

from __future__ import annotations

from collections.abc import Sequence

from scalelab.blocks.layers.base import Shape, ShapeError, fmt_shape


def describe(shape: Shape) -> str:
    """A shape in messages; a per-sample scalar (rank 0) reads as such, not as an empty string."""
    return fmt_shape(shape) if shape else "a scalar (rank 0)"


def axis(dim: int, shape: Shape, what: str, extra: int = 0) -> int:
    """``dim`` as a 0-based axis of ``shape`` (``extra`` more axes allowed: stack's new one); a
    ShapeError naming ``what`` and the shape when it is out of range."""
    rank = len(shape) + extra
    if not -rank <= dim < rank:
        where = f"{-rank}..{rank - 1}" if rank else "none: it has no axes"
        raise ShapeError(f"{what}: dim {dim} is out of range for {describe(shape)} (valid: {where})")
    return dim % rank


def axes(dims: Sequence[int], shape: Shape, what: str) -> tuple[int, ...]:
    """Several distinct axes of ``shape``, each 0-based, in the order given."""
    out = tuple(axis(d, shape, what) for d in dims)
    if len(set(out)) != len(out):
        raise ShapeError(f"{what}: dims {list(dims)} name an axis of {describe(shape)} twice")
    return out


def batched(dim: int) -> int:
    """A per-sample axis as torch's axis of the batched tensor (the batch axis first)."""
    return dim + 1 if dim >= 0 else dim


def broadcast(shapes: Sequence[Shape], what: str) -> Shape:
    """The shape torch broadcasts ``shapes`` to: aligned at the last axis, each size equal or 1."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        sizes = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        wide = sizes - {1}
        if len(wide) > 1:
            raise ShapeError(f"{what}: cannot broadcast {' and '.join(describe(s) for s in shapes)} "
                             f"(sizes {' and '.join(str(n) for n in sorted(wide))} meet at axis {i} of the result)")
        out.append(wide.pop() if wide else 1)
    return tuple(out)
