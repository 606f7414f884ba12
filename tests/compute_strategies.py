"""Hypothesis strategies for the compute, norm and activation block kinds at any rank: (kind, params,
input shape or list of shapes) examples, run by tests/test_compute_specs.py as tests/test_block_kinds.py
runs the others."""

from __future__ import annotations

from hypothesis import strategies as st

from scalelab.blocks.layers import ACTIVATIONS

SHAPES = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
CHANNELS_FIRST = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)  # (C,), (C, L), (C, H, W)


@st.composite
def linear(draw):
    shape = draw(SHAPES)
    params = {"kind": "linear", "out": draw(st.integers(1, 6)), "bias": draw(st.booleans()), "flatten": False,
              "activation": draw(st.sampled_from(["none", *ACTIVATIONS]))}
    return "linear", params, shape


@st.composite
def activation(draw):
    fn, extra = draw(st.sampled_from([
        ("leaky_relu", {"negative_slope": 0.3}), ("elu", {"alpha": 0.7}), ("celu", {"alpha": 1.5}),
        ("gelu", {"approximate": "tanh"}), ("hardtanh", {"min_val": -0.2, "max_val": 0.4}),
        ("softplus", {"beta": 3.0}), ("threshold", {"threshold": 0.0, "value": 2.0}), ("prelu", {}),
        ("prelu", {"per_channel": True, "init": 0.5}), ("mish", {}), ("softsign", {}), ("glu", {"dim": 0}),
    ]))
    shape = draw(SHAPES)
    if fn == "glu":
        shape = (2 * shape[0], *shape[1:])
    return "activation", {"kind": "activation", "function": fn, **extra}, shape


@st.composite
def batchnorm(draw):
    return "batchnorm", {"kind": "batchnorm"}, draw(CHANNELS_FIRST)


@st.composite
def group_norm(draw):
    groups = draw(st.integers(1, 3))
    shape = draw(CHANNELS_FIRST)
    shape = (groups * draw(st.integers(1, 3)), *shape[1:])
    params = {"kind": "group_norm", "groups": groups, "affine": draw(st.booleans()), "norm_eps": 1e-6}
    return "group_norm", params, shape


@st.composite
def instance_norm(draw):
    shape = draw(st.lists(st.integers(2, 5), min_size=2, max_size=3).map(tuple))
    return "instance_norm", {"kind": "instance_norm", "affine": draw(st.booleans())}, shape


@st.composite
def trailing_norm(draw, kind):
    shape = draw(SHAPES)
    params = {"kind": kind, "trailing": draw(st.integers(1, len(shape))), "affine": draw(st.booleans())}
    if kind == "layer_norm" and draw(st.booleans()):
        params["bias"] = False
    return kind, params, shape


@st.composite
def conv1d(draw):
    groups = draw(st.integers(1, 3))
    shape = (groups * draw(st.integers(1, 3)), draw(st.integers(3, 12)))
    params = {"kind": "conv1d", "out": groups * draw(st.integers(1, 3)), "kernel": draw(st.integers(1, 5)),
              "stride": draw(st.integers(1, 3)), "dilation": draw(st.integers(1, 2)), "groups": groups,
              "padding": draw(st.sampled_from(["same", "valid", 0, 1, 2])),
              "padding_mode": draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"])),
              "norm": draw(st.sampled_from(["batchnorm", "none"])), "activation": draw(st.sampled_from(["relu", "none"]))}
    return "conv1d", params, shape


@st.composite
def matmul(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    a = (*[d if draw(st.booleans()) else 1 for d in lead], n, k) if draw(st.booleans()) else (k,)
    b = (*lead[draw(st.integers(0, len(lead))):], k, m) if draw(st.booleans()) else (k,)
    return "matmul", {"kind": "matmul"}, [a, b]


@st.composite
def attention(draw):
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    n_q, n_k, e, ev = (draw(st.integers(1, 5)) for _ in range(4))
    params = {"kind": "attention", "causal": draw(st.booleans())}
    if draw(st.booleans()):
        params["scale"] = draw(st.floats(0.05, 2.0))
    return "attention", params, [(*lead, n_q, e), (*lead, n_k, e), (*lead, n_k, ev)]


STRATEGIES = {
    "attention": attention(),
    "matmul": matmul(),
    "conv1d": conv1d(),
    "linear": linear(),
    "activation": activation(),
    "batchnorm": batchnorm(),
    "group_norm": group_norm(),
    "instance_norm": instance_norm(),
    "layer_norm": trailing_norm("layer_norm"),
    "rms_norm": trailing_norm("rms_norm"),
}
