"""Hypothesis strategies for the source and several-output block kinds (param, split, unbind):
(kind, params, input shape) examples at ranks 0 to 4, run by tests/test_sources_and_outputs.py as
tests/test_block_kinds.py runs the others (a source takes no input: its shape is ``[]``)."""

from __future__ import annotations

from hypothesis import strategies as st

SHAPES = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@st.composite
def param(draw):
    shape = draw(st.lists(st.integers(1, 5), max_size=4))
    params = {"kind": "param", "shape": shape, "trainable": draw(st.booleans())}
    ones = [i for i, n in enumerate(shape) if n == 1]
    if ones and draw(st.booleans()):
        params["batch_axis"] = draw(st.sampled_from(ones))
    return "param", params, []


def _axis(draw, shape):
    dim = draw(st.integers(0, len(shape) - 1))
    return dim - len(shape) if draw(st.booleans()) else dim


@st.composite
def split(draw):
    shape = draw(SHAPES)
    dim = _axis(draw, shape)
    size = shape[dim]
    cuts = sorted(draw(st.sets(st.integers(1, size - 1), max_size=size - 1))) if size > 1 else []
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, size])]
    return "split", {"kind": "split", "dim": dim, "sizes": sizes}, shape


@st.composite
def unbind(draw):
    shape = draw(SHAPES)
    return "unbind", {"kind": "unbind", "dim": _axis(draw, shape)}, shape


STRATEGIES = {"param": param(), "split": split(), "unbind": unbind()}
