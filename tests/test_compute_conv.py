"""Convolution in any form, face by face against torch's Conv1d/2d/3d: 1-d inputs (ECA's channel
conv), groups, dilation, strides and padding modes; the ``conv1d`` kind built and run."""

import pytest
from faces import check_faces

from scalelab.blocks import layers as L
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import parse_spec

CASES = {
    "1d/eca": (L.Conv(1, 1, (5,), (1,), (2,)), (1, 16)),
    "1d/grouped+dilated+bias": (L.Conv(4, 6, (3,), (2,), (2,), (2,), groups=2, bias=True), (4, 11)),
    "1d/depthwise-reflect": (L.Conv(4, 4, (3,), (1,), (1,), (1,), groups=4, padding_mode="reflect"), (4, 9)),
    "1d/circular": (L.Conv(3, 2, (3,), (1,), (2,), (1,), padding_mode="circular"), (3, 7)),
    "2d/dilated-replicate": (L.Conv(4, 4, (3, 3), (1, 1), (2, 2), (2, 2), groups=2, padding_mode="replicate"), (4, 7, 6)),
    "2d/strided-rect": (L.Conv(3, 5, (3, 1), (2, 1), (1, 0)), (3, 8, 5)),
    "3d": (L.Conv(2, 4, (3, 3, 3), (1, 2, 2), (1, 1, 1), bias=True), (2, 4, 6, 6)),
}


@pytest.mark.parametrize("trained,input_grad", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("name", list(CASES))
def test_each_conv_face_by_face(name, trained, input_grad):
    layer, shape = CASES[name]
    # torch's FlopCounterMode counts a grouped weight gradient ``groups`` times over (Conv.train_macs)
    check_faces(layer, shape, trained, input_grad, grad_weight_factor=layer.groups)


def test_conv1d_counts_by_hand():
    layer, shape = CASES["1d/grouped+dilated+bias"]
    # length 11, padding 2, dilation 2, kernel 3, stride 2: (11 + 4 - 4 - 1) // 2 + 1 = 6
    assert layer.out_shape(shape) == (6, 6)
    cost = L.walk(layer, shape).costs[0]
    assert (cost.params, cost.macs, cost.ops) == (6 * 2 * 3 + 6, 6 * 6 * 2 * 3, 36)
    assert L.latency_of(CASES["1d/depthwise-reflect"][0]) == (L.LatencyClass.DEPTHWISE_CONV, 4)
    assert L.latency_of(L.Conv(4, 8, (1,), (1,), (0,), (1,))) == (L.LatencyClass.POINTWISE_CONV, 8)


def test_a_conv_takes_the_rank_of_its_kernel():
    with pytest.raises(L.ShapeError, match=r"a 1-d conv needs a \(channels, length\) input, got 4x5x5"):
        L.Conv(4, 4, (3,), (1,), (1,), (1,)).out_shape((4, 5, 5))
    with pytest.raises(ValueError, match="one size per spatial axis"):
        L.Conv(4, 4, (3,), (1, 1), (1,), (1,))


def _network(blocks, input_="{channels: 4, resolution: 8}"):
    return resolve(parse_spec(f"name: t\ninput: {input_}\nblocks:\n" + "".join(f"  - {b}\n" for b in blocks)))


def test_eca_in_a_spec_builds_what_torch_runs():
    """ECA (Wang et al. 2020): a global average, a 1-d conv of kernel 3 across the channels, a
    sigmoid gating the map, as timm's EcaModule computes it."""
    torch = pytest.importorskip("torch")
    from scalelab.build import build_module

    network = _network([
        "{name: stem, kind: conv, out: 8, kernel: 3, norm: none, activation: none}",
        "{name: gap, kind: global_avgpool}",
        "{name: row, kind: reshape, shape: [1, 8]}",
        "{name: eca, kind: conv1d, out: 1, kernel: 3, bias: false, norm: none, activation: sigmoid, scale_width: false}",
        "{name: weights, kind: reshape, shape: [8, 1, 1]}",
        "{name: gated, kind: binary, op: mul, from: [stem, weights]}",
    ])
    eca = network.blocks["eca"]
    assert eca.out_shape == (1, 8) and eca.costs[0].params == 3 and eca.costs[0].macs == 8 * 3
    net = build_module(network).eval()
    x = torch.randn(2, 4, 8, 8)
    stem, conv = net.blocks[0][0], net.blocks[3][0]
    y = stem(x)
    gate = torch.sigmoid(torch.nn.functional.conv1d(y.mean((2, 3)).view(2, 1, -1), conv.weight, padding=1))
    torch.testing.assert_close(net(x), y * gate.view(2, -1, 1, 1))


def test_conv1d_options_build_what_torch_runs():
    torch = pytest.importorskip("torch")
    from scalelab.build import build_module

    network = _network([
        "{name: seq, kind: reshape, shape: [4, 16]}",
        "{name: proj, kind: conv1d, out: 8, kernel: 3, stride: 2, groups: 2, dilation: 2, padding: 2, "
        "padding_mode: reflect, norm: batchnorm, activation: leaky_relu}",
        "{name: dw, kind: conv1d, depthwise: true, kernel: 5, padding: same, norm: none, activation: sigmoid}",
    ], "{channels: 4, resolution: 4}")
    assert [b.out_shape for b in network.blocks.values()] == [(4, 16), (8, 8), (8, 8)]  # (16 + 2 * 2 - 2 * 2 - 1) // 2 + 1 = 8
    net = build_module(network).eval()
    x = torch.randn(2, 4, 4, 4)
    proj, bn, dw = net.blocks[1][0], net.blocks[1][1], net.blocks[2][0]
    F = torch.nn.functional
    h = F.conv1d(F.pad(x.reshape(2, 4, 16), (2, 2), mode="reflect"), proj.weight, None, 2, 0, 2, 2)
    h = torch.sigmoid(F.conv1d(F.leaky_relu(bn(h)), dw.weight, dw.bias, 1, 2, 1, 8))
    torch.testing.assert_close(net(x), h)


def _refusal(blocks):
    with pytest.raises(ScalelabError) as caught:
        _network(["{name: seq, kind: reshape, shape: [4, 8]}", *blocks], "{channels: 4, resolution: [2, 4]}")
    return str(caught.value)


@pytest.mark.parametrize("block,message", [
    ("{kind: conv1d, out: 6, groups: 4}", "groups=4 must divide both 4 input and 6 output channels"),
    ("{kind: conv1d, depthwise: true, groups: 2}", "give one of groups and depthwise"),
    ("{kind: conv1d, kernel: 3}", "missing required field 'out'"),
    ("{kind: conv1d, out: 4, kernel: 9, padding: 8, padding_mode: reflect}", "reflect padding 8 is too large for a 8 map"),
    ("{kind: conv1d, out: 4, kernel: 9, padding: valid}", "a 9 conv (padding 0, dilation 1) does not fit a 8 map"),
])
def test_bad_conv1d_is_refused(block, message):
    assert message in _refusal([block])


def test_conv1d_on_a_feature_map_is_refused():
    with pytest.raises(ScalelabError, match=r"conv1d needs a \(channels, length\) input, got 4x8x8"):
        _network(["{kind: conv1d, out: 4}"])


def test_explain_states_a_1d_conv():
    from scalelab.report.explain import explain, to_text

    network = _network(["{name: seq, kind: reshape, shape: [4, 16]}",
                        "{name: c, kind: conv1d, out: 8, kernel: 3, stride: 2}"], "{channels: 4, resolution: 4}")
    text = to_text(explain(network, "c"))
    assert "conv 3, 4 -> 8, stride 2" in text
    assert "8 × 8 × (3 × 4) = 768" in text and "8 output positions, 8 filters, each 3 × 4" in text
