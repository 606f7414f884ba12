"""Hypothesis strategies for the block kinds and options of modern CNNs (wrap, fused_mbconv, SE
options, group width, absolute expansion): (kind, params, input shape) examples."""

from __future__ import annotations

from hypothesis import strategies as st

FUNCTIONS = st.sampled_from(["relu", "relu6", "sigmoid", "silu", "hardsigmoid", "hardswish"])
GATES = st.sampled_from(["sigmoid", "hardsigmoid"])


def feature_map(channels=st.integers(1, 8), size=st.integers(5, 10)):
    return st.tuples(channels, size, size)


@st.composite
def se_option(draw, allow_expanded=True):
    """0, a fraction, or the long form of a squeeze-excite."""
    if draw(st.booleans()):
        return draw(st.sampled_from([0.0, 0.25, 0.5]))
    opts = {"of": draw(st.sampled_from(["input", "expanded"] if allow_expanded else ["input"]))}
    if draw(st.booleans()):
        opts["channels"] = draw(st.integers(1, 6))
    else:
        opts["ratio"] = draw(st.sampled_from([0.25, 0.5, 1.0, 0.1]))
        opts["divisor"] = draw(st.sampled_from([1, 4, 8]))
    if draw(st.booleans()):
        opts["activation"] = draw(FUNCTIONS)
    if draw(st.booleans()):
        opts["gate"] = draw(GATES)
    return opts


@st.composite
def inverted_residual(draw, kind):
    params = dict(
        kind=kind, out=draw(st.integers(1, 10)), kernel=draw(st.sampled_from([1, 3, 5])),
        stride=draw(st.integers(1, 2)), se=draw(se_option()), se_gate=draw(GATES), skip=draw(st.booleans()),
        drop_path=draw(st.sampled_from([0.0, 0.2])), norm=draw(st.sampled_from(["batchnorm", "none"])),
        activation=draw(st.sampled_from(["relu", "silu", "hardswish"])),
    )
    if draw(st.booleans()):
        params["hidden"] = draw(st.integers(1, 24))
    else:
        params["expand"] = draw(st.sampled_from([1, 2, 2.5, 4]))
    c, h, w = draw(feature_map())
    if draw(st.booleans()):
        c = params["out"]  # make the identity shortcut possible
    return kind, params, (c, h, w)


@st.composite
def grouped_bottleneck(draw):
    group_width = draw(st.integers(1, 4))
    params = dict(
        kind="bottleneck", out=draw(st.integers(1, 12)), mid=group_width * draw(st.integers(1, 3)),
        group_width=group_width, se=draw(se_option()), se_gate=draw(GATES), stride=draw(st.integers(1, 2)),
        shortcut=draw(st.sampled_from(["A", "B", "C", "none"])), preact=draw(st.booleans()),
        activation=draw(st.sampled_from(["relu", "silu", "none"])),
    )
    return "bottleneck", params, draw(feature_map())


@st.composite
def grouped_conv(draw):
    group_width = draw(st.integers(1, 3))
    in_ch = group_width * draw(st.integers(1, 3))
    params = dict(kind="conv", out=draw(st.integers(1, 4)) * in_ch // group_width, group_width=group_width,
                  kernel=draw(st.sampled_from([1, 3])), stride=draw(st.integers(1, 2)))
    return "conv", params, draw(feature_map(channels=st.just(in_ch)))


def _body_block(channels):
    """One body block, most of them keeping or changing the channel count."""
    return st.one_of(
        st.builds(lambda out, k: {"kind": "conv", "out": out, "kernel": k}, channels, st.sampled_from([1, 3])),
        st.builds(lambda k: {"kind": "conv", "out": 1, "depthwise": True, "kernel": k}, st.sampled_from([3, 5])),
        st.just({"kind": "batchnorm"}),
        st.builds(lambda f: {"kind": "activation", "function": f}, FUNCTIONS),
        st.builds(lambda ratio, of, div, gate: {"kind": "squeeze_excite", "ratio": ratio, "of": of,
                                                "divisor": div, "gate": gate},
                  st.sampled_from([0.25, 0.5]), st.sampled_from(["input", "expanded"]), st.sampled_from([1, 4]), GATES),
        st.builds(lambda out, e: {"kind": "mbconv", "out": out, "expand": e}, channels, st.sampled_from([1, 2])),
    )


@st.composite
def wrap(draw):
    c, h, w = draw(feature_map())
    body = draw(st.lists(_body_block(st.sampled_from([c, c, 2 * c, 3])), min_size=1, max_size=4))
    channels = c
    for block in body:  # a depthwise conv keeps the channels it gets
        if block.get("depthwise"):
            block["out"] = channels
        channels = block.get("out", channels)
    params = dict(kind="wrap", body=body, shortcut=draw(st.sampled_from(["identity", "projection", "none"])),
                  join=draw(st.sampled_from(["add", "add", "concat"])), post=draw(st.sampled_from(["none", "relu"])),
                  drop_path=draw(st.sampled_from([0.0, 0.1])))
    strided = [i for i, b in enumerate(body) if b["kind"] in ("conv", "mbconv")]
    if strided and draw(st.booleans()):
        params["stride"] = draw(st.integers(1, 2))
        params["stride_at"] = draw(st.sampled_from(strided))
    return "wrap", params, (c, h, w)


STRATEGIES = {
    "mbconv options": inverted_residual("mbconv"),
    "fused_mbconv": inverted_residual("fused_mbconv"),
    "bottleneck group width and SE": grouped_bottleneck(),
    "conv group width": grouped_conv(),
    "wrap": wrap(),
}
