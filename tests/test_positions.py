"""The sources window attention adds to its scores (blocks/layers/positions.py), face by face: the
relative position bias against torchvision's Swin gather and the shifted-window mask against timm's
Swin block, their parameters and weight ops by hand, and the spec's checks on their fields."""

from __future__ import annotations

import pytest
import torch

from scalelab import analyze
from scalelab.blocks.layers.positions import PositionBias, WindowMask
from scalelab.errors import ScalelabError
from scalelab.spec import parse_spec


def _spec(*blocks: str) -> str:
    lines = "\n".join(f"  - {b}" for b in blocks)
    return f"name: s\ninput: {{channels: 3, resolution: 14}}\nblocks:\n  - {{name: stem, kind: conv, out: 6, kernel: 1}}\n{lines}\n"


def test_position_bias_gathers_as_torchvision_swin_does():
    from torchvision.models.swin_transformer import ShiftedWindowAttention, _get_relative_position_bias

    torch.manual_seed(0)
    attn = ShiftedWindowAttention(24, [7, 5], [0, 0], num_heads=3)
    torch.nn.init.normal_(attn.relative_position_bias_table)
    layer = PositionBias((7, 5), 3, (1, 3, 35, 35), batch_axis=0)
    module = layer.torch_module()
    assert list(module.state_dict()) == ["table"]  # the index is recomputed, never stored
    module.table.data.copy_(attn.relative_position_bias_table)
    expected = _get_relative_position_bias(attn.relative_position_bias_table, attn.relative_position_index, [7, 5])
    got = module(torch.zeros(2, 6))
    assert got.shape == (2, 3, 35, 35)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[0])


def test_position_bias_counts_its_table_and_its_gather_once_per_pass():
    layer = PositionBias((7, 7), 3, (1, 3, 49, 49), batch_axis=0)
    out = layer.out_shape(())
    cost = layer.cost((), out)
    assert out == (3, 49, 49)
    assert (cost.params, cost.macs, cost.ops, cost.weight_ops) == (13 * 13 * 3, 0, 0, 2 * 3 * 49 * 49)
    assert layer.peak(()).out_elems == 0  # one tensor for the batch, no activation of it


@pytest.mark.parametrize("shift", [3, 2])
def test_window_mask_is_timm_swin_blocks_mask(shift):
    from timm.models.swin_transformer import SwinTransformerBlock

    block = SwinTransformerBlock(12, input_resolution=(14, 21), num_heads=3, window_size=7, shift_size=shift)
    layer = WindowMask((7, 7), (2, 3), (shift, shift), (1, 6, 1, 49, 49), batch_axis=0, cached=True)
    got = layer.torch_module()(torch.zeros(2, 6))
    assert got.shape == (2, 6, 1, 49, 49)
    assert torch.equal(got[1, :, 0], block.attn_mask)


def test_window_mask_built_on_every_pass_counts_its_construction():
    every, cached = (WindowMask((7, 7), (8, 8), (3, 3), (64, 49, 49), cached=c) for c in (False, True))
    # by hand, torchvision's statements: the region map of 64 windows of 49 tokens zero-filled, its
    # nine regions filled and copied into windows; then a difference, two compares with 0 and two
    # masked fills of 64 x 49 x 49
    assert every.cost((), every.out_shape(())).weight_ops == 3 * 64 * 49 + 5 * 64 * 49 * 49
    assert cached.cost((), cached.out_shape(())).weight_ops == 0
    assert torch.equal(every.torch_module()(torch.zeros(1)), cached.torch_module()(torch.zeros(1)))


def test_sources_in_a_spec_have_their_shapes_and_parameters():
    spec = parse_spec(_spec("{name: bias, kind: position_bias, window: [7, 7], heads: 3, shape: [1, 3, 49, 49], "
                            "batch_axis: 0}",
                            "{name: mask, kind: window_mask, window: [7, 7], grid: [2, 2], shift: [3, 3], "
                            "shape: [4, 1, 49, 49]}"), "<s>")
    result = analyze(spec)
    shapes = {b.name: b.out_shape for b in result.blocks}
    assert shapes["bias"] == (3, 49, 49) and shapes["mask"] == (4, 1, 49, 49)
    assert result.total.params == (3 * 6 + 2 * 6) + 13 * 13 * 3  # the stem's conv and batch norm, the table


@pytest.mark.parametrize("block, message", [
    ("{name: m, kind: window_mask, window: [7, 7], grid: [2, 2], shift: [7, 3], shape: [4, 49, 49]}",
     "shift [7, 3] must be less than the window"),
    ("{name: b, kind: position_bias, window: [7, 7], heads: 3, shape: [3, 49, 49], batch_axis: 0}",
     "batch_axis 0 must name an axis of size 1"),
    ("{name: b, kind: position_bias, window: [7, 7], heads: 3, shape: [3, 49, 48]}",
     "position_bias of 3x49x49 cannot be read as 3x49x48"),
])
def test_a_source_whose_fields_disagree_is_refused_by_name(block, message):
    with pytest.raises(ScalelabError, match=message.replace("[", r"\[").replace("]", r"\]")):
        analyze(parse_spec(_spec(block), "<s>"))


def test_position_bias_of_absolute_offsets_gathers_as_timm_efficientformer_does():
    from timm.models.efficientformer import Attention

    torch.manual_seed(0)
    attn = Attention(dim=32, key_dim=8, num_heads=4, resolution=5)
    attn.train()  # in training it gathers on every call, caching nothing
    torch.nn.init.normal_(attn.attention_biases)
    layer = PositionBias((5, 5), 4, (4, 25, 25), offsets="absolute")
    module = layer.torch_module()
    module.table.data.copy_(attn.attention_biases)
    assert torch.equal(module(torch.zeros(1, 6))[0], attn.get_attention_biases(torch.device("cpu")))
    assert layer.cost((), layer.out_shape(())).params == 4 * 25 == attn.attention_biases.numel()


@pytest.mark.parametrize("kind", ["position_bias", "window_mask", "masked_attention", "continuous_position_bias",
                                  "logit_scale"])
def test_each_kind_counts_and_shapes_as_its_built_module(kind):
    """tests/test_block_kinds.py's check for these kinds: parameters, MACs and the output shape of the
    module built from the block's layers, over hypothesis' examples (MACs as FlopCounterMode counts
    them with grad on and the math kernel; Swin V2's position-bias MLP once per pass)."""
    from hypothesis import given, settings
    from position_strategies import STRATEGIES
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from scalelab.blocks import KINDS
    from scalelab.blocks.layers import walk
    from scalelab.build import to_torch

    @settings(max_examples=30, deadline=None)
    @given(STRATEGIES[kind])
    def check(example):
        _, params, shape = example
        tree = KINDS[kind].model_validate(params).layers(shape)
        walked = walk(tree, shape)
        module = to_torch(tree).eval()
        x = [torch.randn(2, *s) for s in shape] if shape else torch.randn(2, 3)  # a source reads the batch size
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            out = module(x)
        assert tuple(out.shape) == (2, *walked.out)
        assert sum(c.params for c in walked.costs) == sum(p.numel() for p in module.parameters())
        # a batch of 2: per-sample MACs twice, MACs on the weights alone once
        assert counter.get_total_flops() // 2 == sum(c.macs for c in walked.costs) * 2 + sum(c.weight_macs for c in walked.costs)

    check()
