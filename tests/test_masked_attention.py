"""masked_attention face by face: its module against F.scaled_dot_product_attention with the mask,
its MACs against FlopCounterMode (grad on, the math kernel), its other ops and training products by
hand, and a mask that does not broadcast refused by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scalelab.blocks.layers import ShapeError
from scalelab.blocks.layers.masked_attention import MaskedAttention

Q, K, V, MASK = (3, 10, 8), (3, 12, 8), (3, 12, 5), (3, 10, 12)


def test_its_module_adds_the_mask_to_the_scores_as_torch_does():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, *s) for s in (Q, K, V))
    mask = torch.randn(1, *MASK).expand(2, *MASK)
    got = MaskedAttention(False, 0.3).torch_module()([q, k, v, mask])
    scores = q @ k.transpose(-2, -1) * 0.3 + mask
    torch.testing.assert_close(got, scores.softmax(-1) @ v)
    torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3))


def test_its_macs_are_the_reference_and_its_ops_by_hand():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    layer = MaskedAttention()
    shapes = [Q, K, V, MASK]
    out = layer.out_shape(shapes)
    cost = layer.cost(shapes, out)
    q, k, v = (torch.randn(1, *s, requires_grad=True) for s in (Q, K, V))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        F.scaled_dot_product_attention(q, k, v, attn_mask=torch.randn(1, *MASK))
    assert out == (3, 10, 5)
    assert cost.macs == 3 * 10 * 12 * (8 + 5) == counter.get_total_flops() // 2
    # by hand per head: the scalings of q and k (10*8 + 12*8), the mask's addition (10*12), softmax 5 per score
    assert cost.ops == 3 * (10 * 8 + 12 * 8 + 10 * 12 + 5 * 10 * 12)


def test_the_masks_gradient_needs_the_probabilities_gradient_only():
    layer = MaskedAttention()
    shapes = [Q, K, V, MASK]
    only_mask = layer.grad_macs(shapes, (False, False, False, True))
    assert only_mask.grad_input == 3 * 10 * 12 * 5  # dout @ v^T, per head
    saved = layer.saved(shapes, (3, 10, 5), False, (False, False, False, True), "cpu")
    assert saved.inputs == (False, False, True, False) and saved.per_sample_elements == 3 * 10 * 12


def test_a_mask_that_does_not_broadcast_to_the_scores_is_refused():
    with pytest.raises(ShapeError, match="a mask of 3x10x11 does not broadcast to the scores 3x10x12"):
        MaskedAttention().out_shape([Q, K, V, (3, 10, 11)])


@pytest.mark.parametrize("grads", [(True, True, True, True), (True, False, False, False), (False, False, False, True),
                                   (False, True, True, False)])
def test_its_faces_agree_with_its_module(grads):
    """Shape, parameters, forward and backward MACs, the bytes autograd saves and the inner peak, by
    tests/faces.py's measurements, for each input's need of a gradient."""
    from faces import check_faces
    from position_strategies import LAYERS

    layer, shapes = LAYERS["masked_attention"]
    check_faces(layer, shapes, False, grads)
