"""The block kinds and options of modern CNNs, over a spread of parameters: the analytic count
equals what torch builds from the same tree (parameters, FlopCounterMode MACs, output shape), as
tests/test_block_kinds.py checks for every kind; then hand-worked counts and refusals."""

from __future__ import annotations

import pytest
from cli_helpers import assert_refused, invoke
from hypothesis import HealthCheck, given, settings
from modern_strategies import STRATEGIES
from test_block_kinds import _check

from scalelab.blocks import KINDS
from scalelab.blocks.layers import walk
from scalelab.blocks.se_options import make_divisible


@pytest.mark.parametrize("label", sorted(STRATEGIES))
def test_analytic_counts_match_the_built_module(label, count_params, flop_counter_macs):
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(STRATEGIES[label])
    def run(example):
        kind, params, shape = example
        _check(kind, params, shape, count_params, flop_counter_macs)

    run()


def counts(params: dict, shape: tuple) -> tuple[int, int, tuple]:
    predicted = walk(KINDS[params["kind"]].model_validate(params).layers(shape), shape)
    return sum(c.params for c in predicted.costs), sum(c.macs for c in predicted.costs), predicted.out


@pytest.mark.parametrize("value, divisor, expected", [
    # 18 -> 16 is nearest but loses more than 10% (16 < 16.2): one divisor more, 24; 4 -> 8 (at least
    # the divisor); 60 -> 64 (halves up); 36 -> 40; 30 with divisor 1 stays
    (18, 8, 24), (4, 8, 8), (60, 8, 64), (36, 8, 40), (30, 1, 30),
])
def test_make_divisible(value, divisor, expected):
    from torchvision.models._utils import _make_divisible

    assert make_divisible(value, divisor) == expected == _make_divisible(value, divisor)


def test_se_options_set_the_squeeze_width():
    # MobileNetV3's SE on 72 expanded channels: _make_divisible(72 // 4, 8) = 24 (not 18, not 24 // 4 = 6)
    se = {"ratio": 0.25, "of": "expanded", "divisor": 8, "gate": "hardsigmoid"}
    params, macs, _ = counts({"kind": "mbconv", "out": 40, "hidden": 72, "se": se}, (24, 4, 4))
    # expand 24*72 + bn 144; depthwise 72*9 + 144; SE 72*24+24 + 24*72+72; project 72*40 + bn 80
    assert params == 24 * 72 + 144 + 72 * 9 + 144 + (72 * 24 + 24) + (24 * 72 + 72) + 72 * 40 + 80
    assert macs == 16 * 24 * 72 + 16 * 72 * 9 + 72 * 24 * 2 + 16 * 72 * 40
    # the short form keeps its meaning: a quarter of the block's input, 24 // 4 = 6
    short, _, _ = counts({"kind": "mbconv", "out": 40, "hidden": 72, "se": 0.25}, (24, 4, 4))
    assert short == params - 2 * 72 * 24 - 24 + 2 * 72 * 6 + 6
    # absolute width
    fixed, _, _ = counts({"kind": "mbconv", "out": 40, "hidden": 72, "se": {"channels": 5}}, (24, 4, 4))
    assert fixed == short - 2 * 72 * 6 - 6 + 2 * 72 * 5 + 5


def test_fused_mbconv_by_hand():
    # 16 -> 32 channels, expand 4 (64), 3x3 stride 2 on 8x8 -> 4x4: fused 3x3 conv 16 -> 64, bn,
    # then 1x1 64 -> 32, bn; no shortcut (channels change)
    assert counts({"kind": "fused_mbconv", "out": 32, "expand": 4, "stride": 2}, (16, 8, 8)) == (
        16 * 64 * 9 + 128 + 64 * 32 + 64, 16 * (64 * 16 * 9 + 32 * 64), (32, 4, 4))
    # expansion 1: one 3x3 conv straight to the output, with its activation; identity shortcut
    assert counts({"kind": "fused_mbconv", "out": 24, "expand": 1}, (24, 5, 5)) == (
        24 * 24 * 9 + 48, 25 * 24 * 24 * 9, (24, 5, 5))


def test_group_width_sets_the_group_count():
    # RegNet: 104 channels in groups of 8 -> 13 groups; the 3x3 holds 104 * (104 / 13) * 9 weights
    p, m, _ = counts({"kind": "conv", "out": 104, "group_width": 8, "norm": "none", "bias": False}, (104, 7, 7))
    assert (p, m) == (104 * 8 * 9, 49 * 104 * 8 * 9)


def test_wrap_projection_and_post_activation():
    # RegNet-style: [1x1 8 -> 16, 3x3 stride 2, SE of the wrap's input (8 // 4 = 2)], 8x8 -> 4x4:
    # the projection (1x1 stride 2, 8 -> 16, bn) is added because the shape changes
    block = {"kind": "wrap", "stride": 2, "stride_at": 1, "shortcut": "projection", "post": "relu", "body": [
        {"kind": "conv", "out": 16, "kernel": 1},
        {"kind": "conv", "out": 16, "kernel": 3, "group_width": 4},
        {"kind": "squeeze_excite", "ratio": 0.25, "of": "input"},
    ]}
    p, m, out = counts(block, (8, 8, 8))
    assert out == (16, 4, 4)
    assert p == (8 * 16 + 32) + (16 * 4 * 9 + 32) + (16 * 2 + 2 + 2 * 16 + 16) + (8 * 16 + 32)
    assert m == 64 * 8 * 16 + 16 * 16 * 4 * 9 + 2 * 16 * 2 + 16 * 8 * 16


def test_wrap_identity_shortcut_only_where_the_shape_is_kept():
    from scalelab.blocks.layers import Residual

    body = [{"kind": "conv", "out": 4, "kernel": 3}]
    kept = KINDS["wrap"].model_validate({"kind": "wrap", "body": body}).layers((4, 6, 6))
    changed = KINDS["wrap"].model_validate({"kind": "wrap", "body": body, "stride": 2}).layers((4, 6, 6))
    assert isinstance(kept, Residual) and not isinstance(changed, Residual)


def test_dense_join_concatenates_the_input():
    p, m, out = counts({"kind": "wrap", "join": "concat", "body": [{"kind": "conv", "out": 32, "kernel": 3}]},
                       (64, 7, 7))
    assert out == (96, 7, 7) and p == 64 * 32 * 9 + 64 and m == 49 * 64 * 32 * 9


def test_convnext_block_by_hand():
    # 96 channels on 56x56: depthwise 7x7 with bias, layer norm (2 x 96), linear 96 -> 384 and
    # 384 -> 96 with biases, layer scale (96); identity shortcut
    block = {"kind": "wrap", "body": [
        {"kind": "conv", "depthwise": True, "kernel": 7, "bias": True, "norm": "layernorm", "activation": "none"},
        {"kind": "channel_linear", "expand": 4, "activation": "gelu"}, {"kind": "channel_linear", "out": 96},
        {"kind": "layer_scale"}]}
    p, m, out = counts(block, (96, 56, 56))
    assert out == (96, 56, 56)
    assert p == (96 * 49 + 96) + 2 * 96 + (96 * 384 + 384) + (384 * 96 + 96) + 96
    assert m == 56 * 56 * (96 * 49 + 2 * 96 * 384)


@pytest.mark.parametrize("channels", range(1, 10))
@pytest.mark.parametrize("parts", range(1, 5))
def test_channel_split_is_torch_chunk(channels, parts):
    import torch

    from scalelab.blocks.layers import chunks

    pieces = torch.arange(channels).chunk(parts)
    assert chunks(channels, parts) == [(int(t[0]), int(t[-1]) + 1) for t in pieces]


def test_channel_shuffle_is_torchvisions():
    import torch
    from torchvision.models.shufflenetv2 import channel_shuffle

    from scalelab.blocks.layers.modern_torch import ChannelShuffle

    x = torch.arange(2 * 12 * 2 * 3, dtype=torch.float32).reshape(2, 12, 2, 3)
    for groups in (1, 2, 3, 4, 6):
        assert torch.equal(ChannelShuffle(groups)(x), channel_shuffle(x, groups))


def test_shuffle_unit_splits_odd_inputs_as_torch_does():
    # stride 2 from 7 channels to 10: both branches see all 7, each gives 5
    p, m, out = counts({"kind": "shuffle_unit", "out": 10, "stride": 2}, (7, 8, 8))
    assert out == (10, 4, 4)
    assert m == 16 * (7 * 9 + 7 * 5) + 64 * 7 * 5 + 16 * (5 * 9 + 5 * 5)


@pytest.mark.parametrize("blocks, message", [
    ("[{kind: shuffle_unit, out: 7, stride: 2}]", "out must be even, got 7"),
    ("[{kind: shuffle_unit, out: 8}]", "a stride-1 shuffle unit keeps its channels: input 3, out 8"),
    ("[{kind: channel_shuffle, groups: 2}]", "needs a multiple of 2 channels, got 3"),
    ("[{kind: channel_split, parts: 4, take: 3}]", "3 channels split into 4 give 3 pieces; no piece 3"),
    ("[{kind: channel_linear}]", "give the output width as out (channels) or as expand"),
    ("[{kind: conv, kernel: 3}]", "missing required field 'out'"),
    ("[{kind: conv, out: 8, groups: 2, group_width: 4}]", "give one of groups, group_width and depthwise"),
    ("[{kind: conv, out: 6, group_width: 4}]", "group_width=4 must divide the 3 channels"),
    ("[{kind: mbconv, out: 8, expand: 4, hidden: 12}]", "give the expansion as expand (a ratio) or as hidden"),
    ("[{kind: mbconv, out: 8, se: {of: input}}]", "give the squeeze width as ratio or as channels"),
    ("[{kind: wrap, body: [{kind: add}]}]", "a body block takes the previous one's output only"),
    ("[{kind: wrap, stride: 2, body: [{kind: batchnorm}]}]", "needs body[0] to be a block with a stride"),
    ("[{stage: s, repeat: 2, block: {kind: mbconv, out: 3, drop_path: 0.1}}]\nstochastic_depth: {rate: 0.2}",
     "drop_path is set by the spec's stochastic_depth ramp"),
])
def test_bad_options_are_refused_through_the_cli(tmp_path, blocks, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(f"name: bad\ninput: {{channels: 3, resolution: 8}}\nblocks: {blocks}\n")
    assert_refused(invoke("analyze", spec), "bad.yaml:", message)


def test_wrap_drops_its_body_only_where_a_shortcut_is_added():
    from scalelab.blocks.layers import Dropout

    def drops(params, shape):
        tree = KINDS["wrap"].model_validate({"kind": "wrap", "drop_path": 0.1, **params}).layers(shape)
        return [c.node for c in walk(tree, shape).costs if isinstance(c.node, Dropout)]

    body = [{"kind": "conv", "out": 4, "kernel": 3}]
    assert [d.p for d in drops({"body": body}, (4, 6, 6))] == [0.1]  # identity add
    assert [d.p for d in drops({"body": body, "shortcut": "projection"}, (2, 6, 6))] == [0.1]
    assert drops({"body": body}, (2, 6, 6)) == []  # the shape changes: no shortcut, nothing to drop
    assert drops({"body": body, "join": "concat"}, (4, 6, 6)) == []


def test_width_scaling_keeps_channels_divisible_by_the_group_width():
    """group_width is marked as dividing the channels it groups: scaled by 1.3 with divisor 8, a
    bottleneck's mid 48 (target 62.4) rounds to a multiple of lcm(8, 24) = 24, 72; a grouped conv's
    input (the bottleneck's out, 96 -> 124.8) to a multiple of lcm(8, 12) = 24, 120."""
    from scalelab import analyze
    from scalelab.scaling.compound import scale_spec
    from scalelab.spec import parse_spec

    spec = parse_spec("""
name: t
input: {channels: 3, resolution: 16}
blocks:
  - {name: stem, kind: conv, out: 48, kernel: 3}
  - {stage: s, repeat: 2, block: {kind: bottleneck, out: 96, mid: 48, group_width: 24}}
  - {name: g, kind: conv, out: 96, kernel: 3, group_width: 12}
""")
    scaled = scale_spec(spec, 1.0, 1.3, divisor=8)
    assert (scaled.blocks[1].block.mid, scaled.blocks[1].block.out, scaled.blocks[2].out) == (72, 120, 120)
    analyze(scaled)  # every grouping still divides its channels
