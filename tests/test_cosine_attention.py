"""Swin V2's sources and its qkv bias (blocks/layers/cosine_attention.py, linear's ``bias_zeroed``),
face by face against torchvision's ShiftedWindowAttentionV2: the continuous position bias and the
logit scale computed as the module computes them, their parameters, the MLP's MACs as
FlopCounterMode counts them (once per pass, whatever the batch), and weight ops by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from scalelab import analyze
from scalelab.blocks.layers import Linear
from scalelab.blocks.layers.cosine_attention import ContinuousPositionBias, LogitScale
from scalelab.errors import ScalelabError
from scalelab.spec import parse_spec


def _attention(window: list[int], heads: int):
    from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

    torch.manual_seed(0)
    attn = ShiftedWindowAttentionV2(8 * heads, window, [0, 0], num_heads=heads)
    for p in attn.parameters():
        torch.nn.init.normal_(p)
    return attn


@pytest.mark.parametrize("window", [[8, 8], [3, 5]])
def test_continuous_position_bias_is_torchvision_swin_v2s(window):
    attn = _attention(window, 3)
    n = window[0] * window[1]
    layer = ContinuousPositionBias((window[0], window[1]), 3, 512, (1, 3, n, n), batch_axis=0)
    module = layer.torch_module()
    assert list(module.state_dict()) == ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight"]  # the table is recomputed
    module.load_state_dict(dict(zip(module.state_dict(), attn.cpb_mlp.state_dict().values())))
    with FlopCounterMode(display=False) as counter:
        expected = attn.get_relative_position_bias()
    got = module(torch.zeros(2, 6))
    assert got.shape == (2, 3, n, n)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[0])
    cost = layer.cost((), layer.out_shape(()))
    assert cost.params == sum(p.numel() for p in attn.cpb_mlp.parameters())
    entries = (2 * window[0] - 1) * (2 * window[1] - 1)
    # by hand: Linear(2, 512) and Linear(512, 3) over every entry of the coordinates table
    assert cost.weight_macs == entries * (2 * 512 + 512 * 3) == counter.get_total_flops() // 2
    assert (cost.macs, cost.ops) == (0, 0)
    assert cost.weight_ops == 2 * entries * 512 + 4 * 3 * n * n  # bias and relu; gather, copy, sigmoid, scale


def test_logit_scale_is_the_clamped_exp_of_its_parameter():
    attn = _attention([4, 4], 4)
    with torch.no_grad():
        attn.logit_scale[0] = 7.0  # above the clamp's log 100
    layer = LogitScale((4, 1, 1), math.log(100.0))
    module = layer.torch_module()
    module.scale.data.copy_(attn.logit_scale)
    got = module(torch.zeros(3, 1))
    assert got.shape == (3, 4, 1, 1)
    assert torch.equal(got[2], torch.clamp(attn.logit_scale, max=math.log(100.0)).exp())
    assert got[2, 0, 0, 0].item() == pytest.approx(100.0)
    cost = layer.cost((), layer.out_shape(()))
    assert (cost.params, cost.macs, cost.weight_ops) == (4, 0, 2 * 4)


def test_a_linear_with_a_zeroed_slice_of_its_bias_computes_as_swin_v2s_qkv():
    attn = _attention([4, 4], 2)
    assert attn.qkv.bias[16:32].abs().sum() > 0  # the keys' bias is a parameter with values
    layer = Linear(16, 48, True, (16, 32))
    module = layer.torch_module()
    module.load_state_dict(attn.qkv.state_dict())
    x = torch.randn(2, 5, 16)
    bias = attn.qkv.bias.clone()
    bias[16:32] = 0
    assert torch.equal(module(x), torch.nn.functional.linear(x, attn.qkv.weight, bias))
    cost = layer.cost((5, 16), layer.out_shape((5, 16)))
    assert (cost.params, cost.macs, cost.weight_ops) == (16 * 48 + 48, 5 * 48 * 16, 48 + 16)


def _spec(block: str) -> str:
    return f"name: s\ninput: {{channels: 3, resolution: 4}}\nblocks:\n  - {{name: f, kind: flatten}}\n  - {block}\n"


def test_the_mlp_macs_count_once_whatever_the_batch():
    spec = parse_spec(_spec("{name: b, kind: continuous_position_bias, window: [2, 2], heads: 2, hidden: 4, "
                            "shape: [2, 4, 4]}"), "<s>")
    one, three = analyze(spec, batch=1).total, analyze(spec, batch=3).total
    assert one.weight_macs == three.weight_macs == 9 * (2 * 4 + 4 * 2)
    assert one.macs == three.macs == one.weight_macs  # the flatten has none, the MLP's count once


@pytest.mark.parametrize("block, message", [
    ("{name: l, kind: linear, out: 6, bias_zeroed: [4, 8]}", "bias_zeroed [4, 8] must be a slice of the bias"),
    ("{name: l, kind: linear, out: 6, bias: false, bias_zeroed: [0, 2]}", "bias_zeroed [0, 2] must be a slice"),
    ("{name: b, kind: continuous_position_bias, window: [1, 4], heads: 2, shape: [2, 4, 4]}", "window"),
])
def test_fields_that_disagree_are_refused_by_name(block, message):
    with pytest.raises(ScalelabError, match=message.replace("[", r"\[").replace("]", r"\]")):
        analyze(parse_spec(_spec(block), "<s>"))


def test_a_report_states_the_mac_on_the_weights_apart():
    from scalelab.report import build_report

    spec = parse_spec(_spec("{name: b, kind: continuous_position_bias, window: [2, 2], heads: 2, hidden: 4, "
                            "shape: [2, 4, 4]}"), "<s>")
    report = build_report(analyze(spec, batch=4))
    assert report.figures["weight_macs"] == 9 * (2 * 4 + 4 * 2)  # by hand, as above: once for the batch of 4
    assert [n for n in report.notes if n.startswith("WEIGHT MACS: 144 of the MACs")]
