"""Hypothesis strategies for the tensor-operation block kinds: (kind, params, input shape or list of
shapes) examples at ranks 1 to 4, run by tests/test_tensor_specs.py as tests/test_block_kinds.py
runs the others."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from scalelab.blocks.layers.elementwise import BINARY_OPS, SCALAR, UNARY_OPS
from scalelab.blocks.layers.reduction import REDUCTIONS

SHAPES = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


def _dim(draw, rank, extra=0):
    """An axis of a rank-``rank`` shape, counted from the front or the back."""
    d = draw(st.integers(0, rank - 1 + extra))
    return d - rank - extra if draw(st.booleans()) else d


@st.composite
def unary(draw):
    op = draw(st.sampled_from(UNARY_OPS))
    params = {"kind": "unary", "op": op}
    if op in SCALAR:
        params["scalar"] = draw(st.sampled_from([0.5, 2, -1.5]))
    if op == "clamp":
        params.update(draw(st.sampled_from([{"min": -0.5}, {"max": 0.5}, {"min": -1, "max": 1.0}])))
    return "unary", params, draw(SHAPES)


@st.composite
def binary(draw):
    a = draw(SHAPES)
    b = tuple(n if draw(st.booleans()) else 1 for n in a[draw(st.integers(0, len(a) - 1)):])
    pair = [a, b] if draw(st.booleans()) else [b, a]
    params = {"kind": "binary", "op": draw(st.sampled_from(BINARY_OPS))}
    if params["op"] in ("add", "sub") and draw(st.booleans()):
        params["alpha"] = 0.5
    return "binary", params, pair


@st.composite
def reduce(draw):
    shape = draw(SHAPES)
    axes = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    params = {"kind": "reduce", "op": draw(st.sampled_from(list(REDUCTIONS))), "dims": axes,
              "keepdim": draw(st.booleans())}
    if params["op"] == "norm":
        params["p"] = draw(st.sampled_from([1, 2.0, 3, "inf"]))
    return "reduce", params, shape


@st.composite
def one_axis(draw, kind, **extra):
    shape = draw(SHAPES)
    return kind, {"kind": kind, "dim": _dim(draw, len(shape)), **{k: draw(v) for k, v in extra.items()}}, shape


@st.composite
def reshape(draw):
    shape = draw(SHAPES)
    k = draw(st.integers(0, len(shape)))
    target = [math.prod(shape[:k]), -1] if draw(st.booleans()) else [-1, *shape[k:]]
    return "reshape", {"kind": "reshape", "shape": target}, shape


@st.composite
def permute(draw):
    shape = draw(SHAPES)
    return "permute", {"kind": "permute", "dims": draw(st.permutations(range(len(shape))))}, shape


@st.composite
def expand(draw):
    shape = tuple(n if draw(st.booleans()) else 1 for n in draw(SHAPES))
    target = [draw(st.integers(1, 4)) if n == 1 else draw(st.sampled_from([n, -1])) for n in shape]
    new = draw(st.lists(st.integers(1, 3), max_size=1))
    return "expand", {"kind": "expand", "shape": new + target}, shape


@st.composite
def slice_(draw):
    shape = draw(SHAPES)
    bound = st.one_of(st.none(), st.integers(-6, 6))
    params = {"kind": "slice", "dim": _dim(draw, len(shape)), "start": draw(bound), "stop": draw(bound),
              "step": draw(st.integers(1, 3))}
    return "slice", params, shape


@st.composite
def select(draw):
    shape = draw(SHAPES)
    dim = _dim(draw, len(shape))
    return "select", {"kind": "select", "dim": dim, "index": draw(st.integers(-shape[dim], shape[dim] - 1))}, shape


@st.composite
def roll(draw):
    shape = draw(SHAPES)
    dims = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    shifts = [draw(st.integers(-7, 7)) for _ in dims]
    return "roll", {"kind": "roll", "shifts": shifts, "dims": dims}, shape


@st.composite
def cat(draw):
    shape = draw(SHAPES)
    dim = _dim(draw, len(shape))
    sizes = draw(st.lists(st.integers(1, 4), min_size=2, max_size=3))
    shapes = [tuple(n if i != dim % len(shape) else size for i, n in enumerate(shape)) for size in sizes]
    return "cat", {"kind": "cat", "dim": dim}, shapes


@st.composite
def stack(draw):
    shape = draw(SHAPES)
    count = draw(st.integers(2, 3))
    return "stack", {"kind": "stack", "dim": _dim(draw, len(shape), extra=1)}, [shape] * count


@st.composite
def pad(draw):
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    shape = tuple(draw(st.lists(st.integers(2, 5), min_size=2 if mode != "constant" else 1, max_size=4)))
    k = draw(st.integers(max(1, len(shape) - 1) if mode != "constant" else 1, min(len(shape), 3)))
    low = -1 if mode == "constant" else 0
    params = {"kind": "pad", "pad": draw(st.lists(st.integers(low, 1), min_size=2 * k, max_size=2 * k)), "mode": mode}
    if mode == "constant" and draw(st.booleans()):
        params["value"] = 1.5
    return "pad", params, shape


@st.composite
def interpolate(draw):
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "linear", "bilinear", "bicubic"]))
    spatial = {"linear": 1, "bilinear": 2, "bicubic": 2}.get(mode) or draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=spatial + 1, max_size=spatial + 1)))
    params = {"kind": "interpolate", "mode": mode}
    if draw(st.booleans()):
        params["size"] = draw(st.one_of(st.integers(1, 7), st.lists(st.integers(1, 7), min_size=spatial,
                                                                     max_size=spatial)))
    else:
        params["scale_factor"] = draw(st.sampled_from([2, 0.5, 1.5, 3]))
    if not mode.startswith("nearest") and draw(st.booleans()):
        params["align_corners"] = draw(st.booleans())
    return "interpolate", params, shape


STRATEGIES = {
    "unary": unary(), "binary": binary(), "reduce": reduce(), "softmax": one_axis("softmax", log=st.booleans()),
    "reshape": reshape(), "permute": permute(), "expand": expand(), "slice": slice_(), "select": select(),
    "roll": roll(), "contiguous": st.tuples(st.just("contiguous"), st.just({"kind": "contiguous"}), SHAPES),
    "cat": cat(), "stack": stack(), "pad": pad(), "interpolate": interpolate(),
}
