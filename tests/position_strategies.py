"""Hypothesis strategies for the sources window attention adds to its scores and for attention with a
mask (position_bias, window_mask, masked_attention), and Swin V2's (continuous_position_bias,
logit_scale): (kind, params, input shape) examples, run by
tests/test_positions.py as tests/test_block_kinds.py runs the others (a source takes no input: its
shape is ``[]``; masked attention takes four: a list of shapes)."""

from __future__ import annotations

from hypothesis import strategies as st


def _read_as(draw, core: list[int]) -> tuple[list[int], "int | None"]:
    """``core`` with axes of size 1 added, one of them perhaps lined up with the batch."""
    shape = list(core)
    for _ in range(draw(st.integers(0, 2))):
        shape.insert(draw(st.integers(0, len(shape))), 1)
    ones = [i for i, n in enumerate(shape) if n == 1]
    return shape, (draw(st.sampled_from(ones)) if ones and draw(st.booleans()) else None)


@st.composite
def position_bias(draw):
    window, heads = [draw(st.integers(1, 4)), draw(st.integers(1, 4))], draw(st.integers(1, 3))
    n = window[0] * window[1]
    shape, axis = _read_as(draw, [heads, n, n])
    params = {"kind": "position_bias", "window": window, "heads": heads, "shape": shape,
              "offsets": draw(st.sampled_from(["signed", "absolute"]))}
    return "position_bias", {**params, **({"batch_axis": axis} if axis is not None else {})}, []


@st.composite
def window_mask(draw):
    window = [draw(st.integers(2, 4)), draw(st.integers(2, 4))]
    grid = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    shift = [draw(st.integers(1, w - 1)) for w in window]
    n = window[0] * window[1]
    shape, axis = _read_as(draw, [grid[0] * grid[1], n, n])
    params = {"kind": "window_mask", "window": window, "grid": grid, "shift": shift, "shape": shape,
              "cached": draw(st.booleans())}
    return "window_mask", {**params, **({"batch_axis": axis} if axis is not None else {})}, []


@st.composite
def masked_attention(draw):
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    L, S, E, Ev = (draw(st.integers(1, 6)) for _ in range(4))
    scores = [*lead, L, S]
    mask = [d if draw(st.booleans()) else 1 for d in scores][draw(st.integers(0, len(lead))):]
    scale = draw(st.sampled_from([None, 0.5]))
    params = {"kind": "masked_attention", **({"scale": scale} if scale else {})}
    return "masked_attention", params, [(*lead, L, E), (*lead, S, E), (*lead, S, Ev), tuple(mask)]


@st.composite
def continuous_position_bias(draw):
    window, heads = [draw(st.integers(2, 4)), draw(st.integers(2, 4))], draw(st.integers(1, 3))
    n = window[0] * window[1]
    shape, axis = _read_as(draw, [heads, n, n])
    params = {"kind": "continuous_position_bias", "window": window, "heads": heads,
              "hidden": draw(st.integers(1, 16)), "shape": shape}
    return "continuous_position_bias", {**params, **({"batch_axis": axis} if axis is not None else {})}, []


@st.composite
def logit_scale(draw):
    shape, axis = _read_as(draw, [draw(st.integers(1, 4)), 1, 1])
    params = {"kind": "logit_scale", "shape": shape, "max": draw(st.sampled_from([4.605170185988092, 1.0]))}
    return "logit_scale", {**params, **({"batch_axis": axis} if axis is not None else {})}, []


STRATEGIES = {"position_bias": position_bias(), "window_mask": window_mask(), "masked_attention": masked_attention(),
              "continuous_position_bias": continuous_position_bias(), "logit_scale": logit_scale()}


def _layers() -> dict:
    from scalelab.blocks.layers.masked_attention import MaskedAttention
    from scalelab.blocks.layers.cosine_attention import ContinuousPositionBias, LogitScale
    from scalelab.blocks.layers.positions import PositionBias, WindowMask

    return {"masked_attention": [MaskedAttention(), [(2, 5, 4), (2, 7, 4), (2, 7, 6), (2, 5, 7)]],
            "position_bias": [PositionBias((2, 3), 2, (1, 2, 6, 6), 0), []],
            "window_mask": [WindowMask((2, 2), (2, 1), (1, 1), (2, 4, 4)), []],
            "continuous_position_bias": [ContinuousPositionBias((2, 3), 2, 8, (1, 2, 6, 6), 0), []],
            "logit_scale": [LogitScale((2, 1, 1), 4.605170185988092), []]}


#: one layer of each kind and its input shapes, whose faces tests/test_positions.py (the sources, against
#: torchvision's and timm's) and tests/test_masked_attention.py (check_faces) assert
LAYERS = _layers()
