"""Training compute (forward, input-gradient and weight-gradient MACs per layer) by hand and against
torch's FlopCounterMode over a real ``loss.backward()`` of the built module."""

import pytest

from scalelab.analysis.train_compute import training_compute
from scalelab.analysis.train_walk import frozen_prefix
from scalelab.blocks.layers import Conv
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.spec import load_spec, parse_spec

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from scalelab.build import build_module  # noqa: E402

aten = torch.ops.aten

# 3x8x8 input; a: 3x3 conv 3->4 (pad 1), b: 1x1 conv 4->6, c: depthwise 3x3 on 6 channels, no norms.
CHAIN = resolve(parse_spec("""
name: chain
input: {channels: 3, resolution: 8}
defaults: {norm: none, activation: relu}
blocks:
  - {name: a, kind: conv, out: 4, kernel: 3}
  - {name: b, kind: conv, out: 6, kernel: 1}
  - {name: c, kind: conv, out: 6, kernel: 3, groups: 6}
"""))
A, B, C = 64 * 4 * 3 * 9, 64 * 6 * 4, 64 * 6 * 9  # MACs per sample: 6,912, 1,536, 3,456


def convs(result):
    return [r for r in result.layers if r.label == "conv"]


def test_by_hand_all_trained():
    rows = convs(training_compute(CHAIN, batch=2))
    assert [r.forward_macs for r in rows] == [2 * A, 2 * B, 2 * C]
    # the network input needs no gradient: a computes no input gradient; b and c do
    assert [r.input_grad_needed for r in rows] == [False, True, True]
    assert [r.grad_input_macs for r in rows] == [0, 2 * B, 2 * C]
    assert [r.grad_weight_macs for r in rows] == [2 * A, 2 * B, 2 * C]
    relu = [r for r in training_compute(CHAIN).layers if r.label == "relu"]
    assert [r.total_macs for r in relu] == [0, 0, 0] and not relu[0].weights_trained


def test_by_hand_frozen_prefix():
    result = training_compute(CHAIN, batch=1, frozen=frozen_prefix(CHAIN, "a"))
    rows = convs(result)
    assert [r.weights_trained for r in rows] == [False, True, True]
    # a is frozen: no weight gradient; b's input comes from a frozen layer: no input gradient either
    assert [(r.grad_input_macs, r.grad_weight_macs) for r in rows] == [(0, 0), (0, B), (C, C)]
    assert result.total_macs() == A + B + C + B + 2 * C
    assert result.total_macs("c") == 3 * C
    with pytest.raises(ScalelabError, match="no block named 'zz'"):
        training_compute(CHAIN, frozen=["zz"])


def counted(network, batch: int, freeze_until=None) -> dict:
    """FlopCounterMode's totals per aten op over one forward and backward of the built module in
    training mode (auxiliary heads included, each output summed into the loss)."""
    torch.manual_seed(0)
    module = build_module(network).train()
    for name in frozen_prefix(network, freeze_until):
        for p in module.block(name).parameters():
            p.requires_grad_(False)
    x = torch.randn(batch, *network.input_shape)
    counter = FlopCounterMode(display=False)
    with counter:
        out = module(x)
        loss = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
        loss.backward()
    return {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}


def torch_view(result) -> dict:
    """scalelab's figures in FlopCounterMode's terms: 2 FLOPs per MAC; conv forward as
    aten.convolution, linear forward as addmm, linear gradients as mm, conv gradients as
    convolution_backward, where torch counts a grouped conv's weight gradient ``groups`` times over
    (see ``Conv.train_macs``)."""
    conv = [r for r in result.layers if isinstance(r.node, Conv)]
    linear = [r for r in result.layers if r.label == "linear"]
    view = {
        "aten.convolution": 2 * sum(r.forward_macs for r in conv),
        "aten.convolution_backward": 2 * sum(r.grad_input_macs + r.node.groups * r.grad_weight_macs for r in conv),
        "aten.addmm": 2 * sum(r.forward_macs for r in linear),
        "aten.mm": 2 * sum(r.grad_input_macs + r.grad_weight_macs for r in linear),
    }
    return {op: flops for op, flops in view.items() if flops}  # torch lists only the ops that ran


def test_depthwise_weight_gradient_torch_overcounts_by_groups():
    """c, a depthwise conv over 6 channels, batch 1: forward 3,456 MACs, input gradient 3,456, true
    weight gradient 3,456 (each of the 6 x 9 weights meets 64 outputs). torch counts the weight
    gradient as a dense conv of the 6-channel input with the 6-channel output gradient: 6 x 3,456."""
    network = resolve(parse_spec("""
name: dw
input: {channels: 6, resolution: 8}
blocks:
  - {name: c, kind: conv, out: 6, kernel: 3, groups: 6, norm: none, activation: none}
  - {name: d, kind: conv, out: 6, kernel: 3, groups: 6, norm: none, activation: none}
"""))
    d = convs(training_compute(network))[1]
    assert (d.forward_macs, d.grad_input_macs, d.grad_weight_macs) == (C, C, C)
    got = counted(network, 1)
    # c: weight gradient only (6 x 3,456 by torch); d: input gradient 3,456 + weight gradient 6 x 3,456
    assert got["aten.convolution_backward"] == 2 * (6 * C + C + 6 * C)
    assert got == torch_view(training_compute(network))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "googlenet"])
def test_zoo_equals_flop_counter(name):
    """Every op FlopCounterMode counts, exactly, all layers trained, batch 2. The only difference
    from the true multiply-adds is torch's grouped-conv weight gradient: zero for resnet18 and
    googlenet (no grouped convs), and for mobilenet_v2 its 17 depthwise convs counted C times over."""
    network = resolve(load_spec(name))
    result = training_compute(network, batch=2)
    got = counted(network, 2)
    assert got == torch_view(result)
    over = got["aten.convolution_backward"] // 2 - sum(r.grad_input_macs + r.grad_weight_macs for r in convs(result))
    expected_over = sum((r.node.groups - 1) * r.grad_weight_macs for r in convs(result))
    assert over == expected_over
    assert (over == 0) == (name != "mobilenet_v2")
    assert result.forward_macs() == 2 * sum(b.cost.macs for b in _analysis(network).blocks)


def test_frozen_prefix_equals_flop_counter():
    network = resolve(load_spec("resnet18"), 64)
    result = training_compute(network, batch=1, frozen=frozen_prefix(network, "layer1.1"))
    assert counted(network, 1, "layer1.1") == torch_view(result)
    assert result.grad_weight_macs("layer1.1") == 0 and result.grad_input_macs("layer1.1") == 0
    # layer2.0: its first conv and its projection shortcut read the frozen layer1.1's output
    first = [(r.label, r.input_grad_needed) for r in result.layers if r.block == "layer2.0" and r.label == "conv"]
    assert first == [("conv", False), ("conv", True), ("conv", False)]


def _analysis(network):
    from scalelab.analysis import analyze

    return analyze(network)
