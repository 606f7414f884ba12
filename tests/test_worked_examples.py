"""The course notes' worked cost examples, through the public API (spec text -> analyze).

Every expected figure is worked out by hand here (MACs of a conv = output elements x input channels
per group x kernel area) and checked against the number the notes print."""

from fractions import Fraction

import pytest

from scalelab import analyze, parse_spec


def spec_text(channels: int, resolution: int, blocks: str) -> str:
    return f"""
name: example
input: {{channels: {channels}, resolution: {resolution}}}
defaults: {{norm: none, activation: none}}
blocks:
{blocks}
"""


def block_macs(text: str) -> dict[str, int]:
    result = analyze(parse_spec(text, "example.yaml"))
    return {b.name: b.cost.macs for b in result.blocks}


def test_inception_5x5_conv_costs_120_million_macs():
    # 28x28x192 -> 5x5 "same" conv with 32 filters -> 28x28x32
    by_hand = (28 * 28 * 32) * (192 * 5 * 5)
    assert by_hand == 120_422_400
    macs = block_macs(spec_text(192, 28, "  - {name: conv5x5, kind: conv, out: 32, kernel: 5, padding: same}"))
    assert macs == {"conv5x5": by_hand}


def test_inception_bottleneck_costs_12_4_million_macs():
    # 1x1 conv 192 -> 16, then 5x5 "same" conv 16 -> 32, on 28x28
    reduce_by_hand = (28 * 28 * 16) * 192
    conv_by_hand = (28 * 28 * 32) * (16 * 5 * 5)
    assert (reduce_by_hand, conv_by_hand) == (2_408_448, 10_035_200)
    text = spec_text(192, 28, """\
  - {name: reduce, kind: conv, out: 16, kernel: 1}
  - {name: conv5x5, kind: conv, out: 32, kernel: 5}""")
    macs = block_macs(text)
    assert macs == {"reduce": reduce_by_hand, "conv5x5": conv_by_hand}
    assert analyze(parse_spec(text)).total.macs == 12_443_648
    # the notes' point: a tenth of the direct conv's cost
    assert Fraction(12_443_648, 120_422_400) < Fraction(1, 9)


SMALL = 6  # the notes' 6x6x3 input; valid 3x3 convs give 4x4 outputs


def test_normal_conv_on_6x6x3_costs_2160():
    by_hand = (4 * 4 * 5) * (3 * 3 * 3)
    assert by_hand == 2_160
    macs = block_macs(spec_text(3, SMALL, "  - {name: conv, kind: conv, out: 5, kernel: 3, padding: valid}"))
    assert macs == {"conv": by_hand}


def test_depthwise_then_pointwise_costs_432_plus_240():
    depthwise_by_hand = (4 * 4 * 3) * (3 * 3)  # one 3x3 filter per input channel
    pointwise_by_hand = (4 * 4 * 5) * 3
    assert (depthwise_by_hand, pointwise_by_hand) == (432, 240)
    text = spec_text(3, SMALL, """\
  - {name: depthwise, kind: conv, out: 3, kernel: 3, padding: valid, depthwise: true}
  - {name: pointwise, kind: conv, out: 5, kernel: 1}""")
    assert block_macs(text) == {"depthwise": 432, "pointwise": 240}


def test_separable_block_costs_672_a_ratio_of_one_fifth_plus_one_ninth():
    separable = block_macs(spec_text(3, SMALL, "  - {name: sep, kind: separable, out: 5, kernel: 3, padding: valid}"))
    normal = block_macs(spec_text(3, SMALL, "  - {name: conv, kind: conv, out: 5, kernel: 3, padding: valid}"))
    assert separable == {"sep": 432 + 240}
    ratio = Fraction(separable["sep"], normal["conv"])
    # Howard et al. 2017 §3.1: separable / normal = 1/N + 1/D_K^2, with N = 5 filters, D_K = 3
    assert ratio == Fraction(1, 5) + Fraction(1, 9)
    assert float(ratio) == pytest.approx(0.311, abs=5e-4)


def test_separable_ratio_holds_for_other_sizes():
    # the same identity on a larger example: 16 -> 32 channels, 3x3, 10x10 "same"
    separable = analyze(parse_spec(spec_text(16, 10, "  - {kind: separable, out: 32}"))).total.macs
    normal = analyze(parse_spec(spec_text(16, 10, "  - {kind: conv, out: 32}"))).total.macs
    assert separable == 10 * 10 * 16 * 9 + 10 * 10 * 32 * 16
    assert Fraction(separable, normal) == Fraction(1, 32) + Fraction(1, 9)


def test_lenet5_of_the_notes_has_61706_params_and_416520_macs():
    # 32x32x1 -> C1 5x5x6 -> 28x28x6 -> S2 -> 14x14x6 -> C3 5x5x16 (dense) -> 10x10x16 -> S4 -> 5x5x16
    # -> F5 400->120 -> F6 120->84 -> output 84->10; convs and fully connected layers have biases
    params = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    macs = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert (params, macs) == (61_706, 416_520)
    for name in ("lenet5", "lenet5_modern"):
        result = analyze(name)
        assert (result.total.params, result.total.macs) == (params, macs), name
        shapes = {b.name: b.out_shape for b in result.blocks}
        assert shapes["c1"] == (6, 28, 28) and shapes["s2"] == (6, 14, 14)
        assert shapes["c3"] == (16, 10, 10) and shapes["s4"] == (16, 5, 5)
        assert shapes["output"] == (10,)
    # the 1998 paper's LeNet-5 (sparse C3, trainable subsampling, RBF output) has 60,840 parameters:
    # C3's connection table gives 6 maps x 3 inputs + 9 x 4 + 6 x 4 + 1 x 6 = 60 input maps of 5x5
    paper_c3 = 60 * 25 + 16
    paper = 156 + 12 + paper_c3 + 32 + (400 * 120 + 120) + (120 * 84 + 84) + 84 * 10
    assert paper == 60_840
    assert params - paper == (16 * 6 * 25 + 16) - paper_c3 + 10 - 12 - 32
