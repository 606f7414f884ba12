"""Field types of the tensor-operation block kinds (unary, reduce, reshape, permute, slice, cat,
pad, ...): per-sample axes and sizes, validated as a spec is read so that a mistake is named at its
YAML path before any shape is known."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, Strict

from scalelab.limits import MAX_ELEMENTS

#: the most axes a per-sample shape may have (torch allows 64 dimensions, the batch axis one of them)
MAX_RANK = 63

#: a per-sample axis: 0 is the first after the batch axis, -1 the last
Dim = Annotated[int, Strict(), Field(ge=-MAX_RANK, le=MAX_RANK - 1)]
#: any integer index, offset or shift (a slice's bounds follow Python's rules, clipped to the axis)
Index = Annotated[int, Strict(), Field(ge=-MAX_ELEMENTS, le=2**63 - 1)]
#: a size in a target shape: a positive size, or -1 (reshape: inferred; expand: kept)
Size = Annotated[int, Strict(), Field(ge=-1, le=MAX_ELEMENTS)]


def _distinct(dims: list[int]) -> list[int]:
    if len(set(dims)) != len(dims):
        raise ValueError(f"dims {dims} name an axis twice")
    return dims


def _sizes(shape: list[int]) -> list[int]:
    if 0 in shape:
        raise ValueError(f"shape {shape} has an empty axis (size 0); sizes are positive, or -1")
    return shape


#: several distinct axes (a reduction's, a permutation's, a roll's)
Dims = Annotated[list[Dim], Field(min_length=1, max_length=MAX_RANK), AfterValidator(_distinct)]
#: a per-sample target shape (reshape, expand)
TargetShape = Annotated[list[Size], Field(min_length=1, max_length=MAX_RANK), AfterValidator(_sizes)]
