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
        st.builds(lambda k: {"kind": "conv", "depthwise": True, "kernel": k}, st.sampled_from([3, 5])),
        st.just({"kind": "batchnorm"}),
        st.just({"kind": "layer_norm"}),
        st.just({"kind": "layer_scale", "init": 0.5}),
        st.builds(lambda e: {"kind": "channel_linear", "expand": e, "activation": "gelu"}, st.sampled_from([0.5, 2])),
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
    params = dict(kind="wrap", body=body, shortcut=draw(st.sampled_from(["identity", "projection", "none"])),
                  join=draw(st.sampled_from(["add", "add", "concat"])), post=draw(st.sampled_from(["none", "relu"])),
                  drop_path=draw(st.sampled_from([0.0, 0.1])))
    strided = [i for i, b in enumerate(body) if b["kind"] in ("conv", "mbconv")]
    if strided and draw(st.booleans()):
        params["stride"] = draw(st.integers(1, 2))
        params["stride_at"] = draw(st.sampled_from(strided))
    return "wrap", params, (c, h, w)


@st.composite
def channel_linear(draw):
    params = dict(kind="channel_linear", bias=draw(st.booleans()), activation=draw(st.sampled_from(["none", "gelu"])))
    if draw(st.booleans()):
        params["out"] = draw(st.integers(1, 12))
    else:
        params["expand"] = draw(st.sampled_from([0.25, 0.5, 2, 4]))
    return "channel_linear", params, draw(feature_map())


@st.composite
def channel_shuffle(draw):
    groups = draw(st.integers(1, 4))
    return "channel_shuffle", dict(kind="channel_shuffle", groups=groups), draw(feature_map(st.integers(1, 4).map(lambda k: k * groups)))


@st.composite
def channel_split(draw):
    c, h, w = draw(feature_map(st.integers(1, 9)))
    parts = draw(st.integers(1, 4))
    pieces = -(-c // -(-c // parts))  # how many pieces torch.chunk gives
    return "channel_split", dict(kind="channel_split", parts=parts, take=draw(st.integers(0, pieces - 1))), (c, h, w)


@st.composite
def shuffle_unit(draw):
    out = 2 * draw(st.integers(1, 5))
    stride = draw(st.integers(1, 2))
    c = out if stride == 1 else draw(st.integers(1, 8))
    params = dict(kind="shuffle_unit", out=out, stride=stride, activation=draw(st.sampled_from(["relu", "hardswish"])))
    return "shuffle_unit", params, draw(feature_map(st.just(c)))


def simple(kind, **extra):
    return st.tuples(st.just(kind), st.fixed_dictionaries({"kind": st.just(kind), **extra}), feature_map())


STRATEGIES = {
    "layer_norm": simple("layer_norm", norm_eps=st.sampled_from([1e-6, 1e-5])),
    "layer_scale": simple("layer_scale", init=st.sampled_from([1e-6, 0.5])),
    "gelu": simple("activation", function=st.just("gelu")),
    "channel_linear": channel_linear(),
    "channel_shuffle": channel_shuffle(),
    "channel_split": channel_split(),
    "shuffle_unit": shuffle_unit(),
    "layernorm in conv and mbconv": st.tuples(
        st.sampled_from(["conv", "mbconv"]), feature_map()
    ).map(lambda e: (e[0], {"kind": e[0], "out": e[1][0], "norm": "layernorm", "activation": "gelu"}, e[1])),
    "mbconv options": inverted_residual("mbconv"),
    "fused_mbconv": inverted_residual("fused_mbconv"),
    "bottleneck group width and SE": grouped_bottleneck(),
    "conv group width": grouped_conv(),
    "wrap": wrap(),
}
