"""Primitive formulas against hand arithmetic and against torch's own shape rules."""

import pytest
import torch
from torch import nn

from scalelab.blocks.layers import (
    AdaptiveAvgPool, BatchNorm, Conv, Gate, Linear, Merge, Parallel, Pool, Residual, ShapeError, Sequence,
    ZeroPadShortcut, walk,
)
from scalelab.build import to_torch


def macs(node, shape):
    return sum(c.macs for c in walk(node, shape).costs)


def params(node, shape):
    return sum(c.params for c in walk(node, shape).costs)


def test_conv_macs_and_params_by_hand():
    conv = Conv(192, 32, (5, 5), padding=(2, 2))
    assert walk(conv, (192, 28, 28)).out == (32, 28, 28)
    assert macs(conv, (192, 28, 28)) == 28 * 28 * 32 * 5 * 5 * 192
    assert params(conv, (192, 28, 28)) == 32 * 192 * 25
    grouped = Conv(64, 128, (3, 3), stride=(2, 2), padding=(1, 1), groups=4, bias=True)
    assert walk(grouped, (64, 56, 56)).out == (128, 28, 28)
    assert macs(grouped, (64, 56, 56)) == 28 * 28 * 128 * (64 // 4) * 9
    assert params(grouped, (64, 56, 56)) == 128 * 16 * 9 + 128


def test_linear_and_batchnorm_by_hand():
    assert params(Linear(400, 120), (400,)) == 400 * 120 + 120
    assert macs(Linear(400, 120), (400,)) == 48_000
    cost = walk(BatchNorm(16), (16, 8, 8)).costs[0]
    assert (cost.params, cost.ops) == (32, 2 * 16 * 64)


@pytest.mark.parametrize("size", [7, 8, 13, 14, 15, 112, 113])
@pytest.mark.parametrize("kernel,stride,padding,ceil", [(3, 2, 0, True), (3, 2, 1, False), (3, 2, 1, True),
                                                        (2, 2, 0, True), (3, 1, 1, True), (5, 3, 2, True)])
def test_pool_output_matches_torch(size, kernel, stride, padding, ceil):
    pool = Pool("max", (kernel, kernel), (stride, stride), (padding, padding), ceil_mode=ceil)
    got = torch.nn.functional.max_pool2d(torch.zeros(1, 2, size, size), kernel, stride, padding, ceil_mode=ceil)
    assert walk(pool, (2, size, size)).out == tuple(got.shape[1:])


@pytest.mark.parametrize("size,kernel,stride,dilation", [(28, 5, 1, 1), (224, 7, 2, 1), (17, 3, 2, 2), (9, 3, 3, 1)])
def test_conv_output_matches_torch(size, kernel, stride, dilation):
    pad = dilation * (kernel - 1) // 2
    conv = Conv(3, 4, (kernel, kernel), (stride, stride), (pad, pad), (dilation, dilation))
    got = to_torch(conv)(torch.zeros(1, 3, size, size))
    assert walk(conv, (3, size, size)).out == tuple(got.shape[1:])


def test_impossible_shapes_are_explained():
    with pytest.raises(ShapeError, match="5x5 conv .* does not fit a 3x3 map"):
        walk(Conv(1, 1, (5, 5)), (1, 3, 3))
    with pytest.raises(ShapeError, match="expects 3 input channels, got 4"):
        walk(Conv(3, 8, (1, 1)), (4, 8, 8))
    with pytest.raises(ShapeError, match="cannot add 8x4x4 and 8x2x2"):
        walk(Merge("add"), [(8, 4, 4), (8, 2, 2)])
    with pytest.raises(ShapeError, match="cannot concatenate"):
        walk(Parallel((Conv(3, 4, (1, 1)), Conv(3, 4, (3, 3)))), (3, 8, 8))


def test_residual_gate_and_branches_add_their_own_ops():
    body = Conv(8, 8, (3, 3), padding=(1, 1))
    res = walk(Residual(body), (8, 4, 4))
    assert res.out == (8, 4, 4) and res.costs[-1].label == "add" and res.costs[-1].ops == 8 * 16
    gate = walk(Gate(Sequence((AdaptiveAvgPool((1, 1)), Conv(8, 8, (1, 1), bias=True)))), (8, 4, 4))
    assert gate.out == (8, 4, 4) and gate.costs[-1].ops == 8 * 16
    cat = walk(Parallel((Conv(3, 4, (1, 1)), Conv(3, 6, (1, 1)))), (3, 5, 5))
    assert cat.out == (10, 5, 5) and cat.costs[-1].ops == 10 * 25


def test_zero_pad_shortcut_matches_torch():
    node = ZeroPadShortcut(2, 32)
    x = torch.randn(1, 16, 15, 15)
    y = to_torch(node)(x)
    assert walk(node, (16, 15, 15)).out == tuple(y.shape[1:]) == (32, 8, 8)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()


def test_built_primitives_have_the_counted_parameters():
    for node, shape in [(Conv(6, 12, (3, 5), groups=3, bias=True), (6, 9, 9)), (Linear(10, 3, False), (10,)),
                        (BatchNorm(7), (7, 2, 2))]:
        assert sum(p.numel() for p in to_torch(node).parameters()) == params(node, shape)
    assert isinstance(to_torch(Pool("avg", (2, 2), (2, 2))), nn.AvgPool2d)
