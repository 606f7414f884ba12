"""Every block kind, over a spread of parameters: the analytic count of its ``layers()`` equals what
torch builds from the same tree (parameters, and conv/linear multiply-adds by
``torch.utils.flop_counter``), and torch's forward gives the predicted output shape."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scalelab.blocks import KINDS
from scalelab.blocks.layers import ShapeError, walk

NORMS = st.sampled_from(["batchnorm", "none"])
ACTIVATIONS = st.sampled_from(["relu", "relu6", "sigmoid", "tanh", "silu", "hardsigmoid", "hardswish", "none"])
FUNCTIONS = st.sampled_from(["relu", "relu6", "sigmoid", "tanh", "silu", "hardsigmoid", "hardswish"])


def feature_map(channels=st.integers(1, 8), size=st.integers(6, 12)):
    return st.tuples(channels, size, size)


@st.composite
def conv(draw):
    groups = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    in_ch = groups * draw(st.integers(1, 3))
    out = in_ch * draw(st.integers(1, 2)) if depthwise else groups * draw(st.integers(1, 4))
    params = dict(
        kind="conv", out=out, kernel=draw(st.sampled_from([1, 2, 3, 5, [1, 3], [3, 1]])),
        stride=draw(st.sampled_from([1, 2, 3, [1, 2]])), padding=draw(st.sampled_from(["same", "valid", 0, 1, 2])),
        dilation=draw(st.sampled_from([1, 2])), norm=draw(NORMS), activation=draw(ACTIVATIONS),
        bias=draw(st.sampled_from([None, True, False])),
        padding_mode=draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"])),
    )
    if depthwise:
        params["depthwise"] = True
    else:
        params["groups"] = groups
    return params, (in_ch, draw(st.integers(1, 12)), draw(st.integers(1, 12)))


@st.composite
def linear(draw):
    shape = draw(st.one_of(st.tuples(st.integers(1, 40)), feature_map(size=st.integers(1, 4))))
    params = dict(kind="linear", out=draw(st.integers(1, 20)), bias=draw(st.booleans()), activation=draw(ACTIVATIONS))
    return params, shape


@st.composite
def window_pool(draw, kind):
    kernel = draw(st.integers(1, 4))
    params = dict(
        kind=kind, kernel=kernel, stride=draw(st.sampled_from([None, 1, 2, 3])),
        padding=draw(st.integers(0, kernel // 2)), ceil_mode=draw(st.booleans()),
    )
    if kind == "avgpool":
        params["count_include_pad"] = draw(st.booleans())
    return params, draw(feature_map(size=st.integers(4, 11)))


@st.composite
def merge(draw, kind):
    c, h, w = draw(feature_map())
    n = draw(st.integers(2, 3))
    if kind == "add":
        return dict(kind="add", activation=draw(ACTIVATIONS)), [(c, h, w)] * n
    return dict(kind="concat"), [(draw(st.integers(1, 8)), h, w) for _ in range(n)]


@st.composite
def squeeze_excite(draw):
    params = dict(kind="squeeze_excite", activation=draw(FUNCTIONS), gate=draw(st.sampled_from(["sigmoid", "hardsigmoid"])))
    if draw(st.booleans()):
        params["squeeze"] = draw(st.integers(1, 6))
    else:
        params["ratio"] = draw(st.sampled_from([0.25, 0.5, 1.0, 0.1]))
    return params, draw(feature_map())


def _residual_common(draw):
    return dict(
        stride=draw(st.integers(1, 2)), shortcut=draw(st.sampled_from(["A", "B", "C", "none"])),
        preact=draw(st.booleans()), norm=draw(NORMS), activation=draw(st.sampled_from(["relu", "silu", "none"])),
    )


@st.composite
def residual(draw):
    params = dict(kind="residual", out=draw(st.integers(1, 10)), **_residual_common(draw))
    return params, draw(feature_map(size=st.integers(5, 9)))


@st.composite
def bottleneck(draw):
    groups = draw(st.integers(1, 3))
    params = dict(
        kind="bottleneck", out=draw(st.integers(1, 12)), mid=groups * draw(st.integers(1, 3)), groups=groups,
        stride_on=draw(st.sampled_from(["conv3x3", "conv1x1"])), **_residual_common(draw),
    )
    return params, draw(feature_map(size=st.integers(5, 9)))


@st.composite
def separable(draw):
    params = dict(
        kind="separable", out=draw(st.integers(1, 10)), kernel=draw(st.sampled_from([3, 5, [3, 1]])),
        stride=draw(st.sampled_from([1, 2])), padding=draw(st.sampled_from(["same", "valid", 1])),
        norm=draw(NORMS), activation=draw(ACTIVATIONS),
    )
    return params, draw(feature_map())


@st.composite
def mbconv(draw):
    params = dict(
        kind="mbconv", out=draw(st.integers(1, 10)), expand=draw(st.sampled_from([1, 2, 2.5, 4, 6])),
        kernel=draw(st.sampled_from([3, 5])), stride=draw(st.integers(1, 2)),
        se=draw(st.sampled_from([0.0, 0.25, 0.5])), se_gate=draw(st.sampled_from(["sigmoid", "hardsigmoid"])),
        skip=draw(st.booleans()), drop_path=draw(st.sampled_from([0.0, 0.2])), norm=draw(NORMS),
        activation=draw(st.sampled_from(["relu6", "silu", "hardswish"])),
    )
    c, h, w = draw(feature_map())
    if draw(st.booleans()):
        c = params["out"]  # make the identity shortcut possible
    return params, (c, h, w)


@st.composite
def inception(draw):
    # every branch keeps the spatial size, so the concatenation is well formed
    step = st.one_of(
        st.builds(lambda out, k: {"kind": "conv", "out": out, "kernel": k}, st.integers(1, 6), st.sampled_from([1, 3, 5])),
        st.just({"kind": "maxpool", "kernel": 3, "stride": 1, "padding": 1, "ceil_mode": True}),
    )
    branches = draw(st.lists(st.lists(step, min_size=1, max_size=2), min_size=1, max_size=4))
    return dict(kind="inception", branches=branches), draw(feature_map())


@st.composite
def aux_classifier(draw):
    params = dict(
        kind="aux_classifier", pool=draw(st.integers(1, 4)), conv=draw(st.integers(1, 8)),
        hidden=draw(st.integers(1, 16)), classes=draw(st.integers(1, 10)), norm=draw(NORMS),
    )
    return params, draw(feature_map())


def simple(kind, shapes=feature_map(), **extra):
    return st.tuples(st.fixed_dictionaries({"kind": st.just(kind), **extra}), shapes)


STRATEGIES = {
    "conv": conv(),
    "linear": linear(),
    "maxpool": window_pool("maxpool"),
    "avgpool": window_pool("avgpool"),
    "global_avgpool": simple("global_avgpool"),
    "adaptive_avgpool": simple("adaptive_avgpool", size=st.sampled_from([1, 2, 3, [2, 1]])),
    "batchnorm": simple("batchnorm", norm_eps=st.sampled_from([1e-5, 1e-3])),
    "lrn": simple("lrn", size=st.integers(1, 5)),
    "activation": simple("activation", function=st.sampled_from(["relu", "relu6", "sigmoid", "tanh", "swish", "silu", "hardsigmoid", "hardswish"])),
    "dropout": simple("dropout", p=st.sampled_from([0.0, 0.5])),
    "flatten": simple("flatten"),
    "add": merge("add"),
    "concat": merge("concat"),
    "squeeze_excite": squeeze_excite(),
    "residual": residual(),
    "bottleneck": bottleneck(),
    "separable": separable(),
    "mbconv": mbconv(),
    "inception": inception(),
    "aux_classifier": aux_classifier(),
}


def test_every_kind_has_a_strategy():
    from modern_strategies import STRATEGIES as MODERN  # tests/test_modern_kinds.py runs those
    from tensor_strategies import STRATEGIES as TENSOR  # tests/test_tensor_specs.py runs those
    from plumbing_strategies import STRATEGIES as PLUMBING  # tests/test_sources_and_outputs.py runs those
    from compute_strategies import STRATEGIES as COMPUTE  # tests/test_compute_specs.py runs those
    from transformer_strategies import STRATEGIES as TRANSFORMER  # tests/test_transformer_kinds.py runs those
    from swin_strategies import STRATEGIES as SWIN  # tests/test_swin.py runs those
    from hybrid_strategies import STRATEGIES as HYBRID  # tests/test_mobilevit.py runs those
    from position_strategies import STRATEGIES as POSITIONS  # tests/test_positions.py runs those

    # opaque kinds stand for operations of unknown cost: nothing to build or count (tests/test_import.py)
    assert set(STRATEGIES) | (set(MODERN) & set(KINDS)) | set(TENSOR) | set(COMPUTE) | set(PLUMBING) | set(TRANSFORMER) | set(SWIN) | set(HYBRID) | set(POSITIONS) == set(KINDS) - {"opaque", "opaque_merge"}


def _check(kind, params, shape, count_params, flop_counter_macs):
    import torch

    from scalelab.build import to_torch

    block = KINDS[kind].model_validate(params)
    try:
        tree = block.layers(shape)
        predicted = walk(tree, shape)
    except ShapeError:
        assume(False)  # an impossible combination (e.g. a valid 5x5 on a 4x4 map): rejected, not built
    module = to_torch(tree).eval()
    batch = 2
    if isinstance(shape, list):
        x = [torch.randn(batch, *s) for s in shape]
    else:
        x = torch.randn(batch, *shape)
    with torch.no_grad():
        out = module(x)
    assert tuple(out.shape) == (batch, *predicted.out), (params, shape)
    assert count_params(module) == sum(c.params for c in predicted.costs), (params, shape)
    assert flop_counter_macs(module, x) == batch * sum(c.macs for c in predicted.costs), (params, shape)


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_analytic_counts_match_the_built_module(kind, count_params, flop_counter_macs):
    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(STRATEGIES[kind])
    def run(example):
        params, shape = example
        _check(kind, params, shape, count_params, flop_counter_macs)

    run()


@pytest.mark.parametrize("kind, params, shape, expected_params, expected_macs", [
    # hand-worked: 3x3 conv 4 -> 8 "same" on 5x5, no norm so a bias: 8*4*9 + 8 params, 5*5*8*4*9 MACs
    ("conv", {"kind": "conv", "out": 8, "norm": "none"}, (4, 5, 5), 8 * 4 * 9 + 8, 5 * 5 * 8 * 4 * 9),
    # depthwise 3x3/2 on 6 channels, 8x8 -> 4x4, with batchnorm: 6*9 + 2*6 params, 4*4*6*9 MACs
    ("conv", {"kind": "conv", "out": 6, "depthwise": True, "stride": 2}, (6, 8, 8), 6 * 9 + 12, 4 * 4 * 6 * 9),
    # basic residual 4 -> 8, stride 2, projection shortcut (B): two 3x3 convs, a 1x1, three batchnorms
    ("residual", {"kind": "residual", "out": 8, "stride": 2}, (4, 8, 8),
     8 * 4 * 9 + 8 * 8 * 9 + 8 * 4 + 3 * 16, 4 * 4 * 8 * (4 * 9 + 8 * 9 + 4)),
    # option A shortcut: no parameters in the shortcut
    ("residual", {"kind": "residual", "out": 8, "stride": 2, "shortcut": "A"}, (4, 8, 8),
     8 * 4 * 9 + 8 * 8 * 9 + 2 * 16, 4 * 4 * 8 * (4 * 9 + 8 * 9)),
    # MBConv 8 -> 8, expand 6 (48), 3x3 depthwise, SE squeeze 8 // 4 = 2 (from the block input), identity skip
    ("mbconv", {"kind": "mbconv", "out": 8, "se": 0.25}, (8, 4, 4),
     8 * 48 + 2 * 48 + 48 * 9 + 2 * 48 + (48 * 2 + 2) + (2 * 48 + 48) + 48 * 8 + 2 * 8,
     16 * 48 * 8 + 16 * 48 * 9 + 48 * 2 + 2 * 48 + 16 * 8 * 48),
])
def test_hand_worked_block_counts(kind, params, shape, expected_params, expected_macs):
    predicted = walk(KINDS[kind].model_validate(params).layers(shape), shape)
    assert sum(c.params for c in predicted.costs) == expected_params
    assert sum(c.macs for c in predicted.costs) == expected_macs


@pytest.mark.parametrize("blocks, message", [
    # the channel-wise layer norm (LayerNorm2d) takes feature maps only; a vector is refused, not mis-built
    ("[{kind: linear, out: 8}, {kind: layer_norm}]", "layer_norm needs a (channels, height, width) feature map"),
    # torch's reflection padding must be smaller than the map
    ("[{kind: conv, out: 4, kernel: 5, padding: 2, padding_mode: reflect}]", "reflect padding 2x2 is too large for a 2x2 map"),
])
def test_shapes_torch_cannot_build_are_refused_through_the_cli(tmp_path, blocks, message):
    from typer.testing import CliRunner

    from scalelab.cli import app

    spec = tmp_path / "bad.yaml"
    spec.write_text(f"name: bad\ninput: {{channels: 3, resolution: 2}}\nblocks: {blocks}\n")
    result = CliRunner().invoke(app, ["analyze", str(spec)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_registry_lists_every_kind_under_its_own_name():
    # every Block subclass with a kind literal, found by importing every module of the package; each
    # lives in the module of scalelab.blocks.kinds named by its kind, the one place a kind is declared
    import importlib
    import pkgutil

    import scalelab.blocks
    from scalelab.blocks.base import Block

    for info in pkgutil.walk_packages(scalelab.blocks.__path__, "scalelab.blocks."):
        importlib.import_module(info.name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    defined = {sub.model_fields["kind"].default: sub for sub in subclasses(Block)
               if sub.__module__.startswith("scalelab.blocks.") and "kind" in sub.model_fields
               and isinstance(sub.model_fields["kind"].default, str) and sub.model_fields["kind"].default != ""}
    assert {kind: KINDS[kind] for kind in KINDS} == defined
    assert all(model.__module__ == f"scalelab.blocks.kinds.{kind}" for kind, model in defined.items())
    assert len(KINDS) == len(list(KINDS)) == len(defined) and "conv" in KINDS and "convv" not in KINDS


def test_a_kind_module_must_define_its_own_kind(monkeypatch):
    import sys
    import types
    from typing import Literal

    from scalelab.blocks import registry
    from scalelab.blocks.base import Block

    module = types.ModuleType("scalelab.blocks.kinds.misnamed")

    class Other(Block):
        kind: Literal["other"] = "other"

    Other.__module__ = module.__name__
    module.Other = Other
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(TypeError, match="scalelab.blocks.kinds.misnamed must define one Block model with kind "
                                        "'misnamed', found 0"):
        registry._model("misnamed")
