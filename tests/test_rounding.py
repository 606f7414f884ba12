"""Rounding rules of compound scaling, against the official EfficientNet rule worked by hand and
against torchvision's own ``_make_divisible``."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from scalelab.errors import ScalelabError
from scalelab.scaling.rounding import round_channels, round_repeats, round_resolution


# EfficientNet-B2 (width 1.1): the official round_filters worked by hand,
# int(c * 1.1 + 4) // 8 * 8, plus 8 if that fell below 90% of c * 1.1.
@pytest.mark.parametrize("channels, expected", [
    (32, 32),     # 35.2 -> int(39.2) = 39 -> 32; 32 >= 31.68
    (16, 16),     # 17.6 -> 21 -> 16; 16 >= 15.84
    (24, 24),     # 26.4 -> 30 -> 24; 24 >= 23.76
    (40, 48),     # 44.0 -> 48 -> 48
    (80, 88),     # 88.0 -> 92 -> 88
    (112, 120),   # 123.2 -> 127 -> 120; 120 >= 110.88
    (192, 208),   # 211.2 -> 215 -> 208; 208 >= 190.08
    (320, 352),   # 352.0 -> 356 -> 352
    (1280, 1408),  # 1408.0 -> 1412 -> 1408 (torchvision's B2 head)
])
def test_round_channels_b2(channels, expected):
    assert round_channels(channels, 1.1) == expected


def test_round_channels_b7_doubles_exactly():
    assert [round_channels(c, 2.0) for c in (32, 16, 24, 40, 80, 112, 192, 320, 1280)] == \
        [64, 32, 48, 80, 160, 224, 384, 640, 2560]


def test_round_channels_never_loses_more_than_ten_percent():
    # 47 to a multiple of 32: int(47 + 16) = 63 -> 32, which is below 0.9 * 47 = 42.3 -> 64
    assert round_channels(47, 1.0, divisor=32) == 64
    # 36 x 0.25 = 9: int(13) -> 8 < 8.1 -> 16
    assert round_channels(36, 0.25) == 16
    # 50 to a multiple of 32: int(66) -> 64 (nearest), no correction
    assert round_channels(50, 1.0, divisor=32) == 64


def test_round_channels_floor_and_min_value():
    assert round_channels(16, 0.25) == 8          # 4 -> 0 -> floor at the divisor
    assert round_channels(16, 0.25, min_value=16) == 16
    assert round_channels(100, 1.0, divisor=1) == 100


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2048), st.floats(0.1, 4.0), st.sampled_from([1, 4, 8, 16, 32]))
def test_round_channels_equals_torchvision_make_divisible(channels, multiplier, divisor):
    from torchvision.models._utils import _make_divisible

    assert round_channels(channels, multiplier, divisor) == _make_divisible(channels * multiplier, divisor)


@pytest.mark.parametrize("repeats, multiplier, expected", [
    (1, 1.1, 2), (2, 1.1, 3), (3, 1.1, 4),   # ceil(1.1), ceil(2.2), ceil(3.3)
    (2, 1.2, 3), (4, 1.2, 5), (5, 1.2, 6),   # 2.4, 4.8, 6.0 exactly
    (4, 3.1, 13), (1, 3.1, 4), (3, 2.6, 8),  # 12.4, 3.1, 7.8
    (3, 0.5, 2), (1, 0.1, 1),                # a stage keeps at least one block
    (10, 1.1, 11),                           # 11.000000000000002 in floats: not a twelfth block
])
def test_round_repeats(repeats, multiplier, expected):
    assert round_repeats(repeats, multiplier) == expected


@pytest.mark.parametrize("size, multiplier, multiple, expected", [
    (224, 1.15, 1, 258),        # 257.6
    (224, 1.15, 8, 256),        # 257.6 / 8 = 32.2 -> 32
    (224, 1.15 ** 2, 1, 296),   # 296.24
    (224, 1.15 ** 2, 32, 288),  # 9.2575 -> 9
    (224, 0.1, 32, 32),         # at least one multiple
])
def test_round_resolution(size, multiplier, multiple, expected):
    assert round_resolution(size, multiplier, multiple) == expected


@pytest.mark.parametrize("call", [
    lambda: round_channels(32, 0), lambda: round_channels(32, 1.0, divisor=0),
    lambda: round_repeats(3, -1), lambda: round_resolution(224, 0), lambda: round_resolution(224, 1.1, 0),
])
def test_bad_multipliers_are_clear_errors(call):
    with pytest.raises(ScalelabError, match="positive"):
        call()


def test_repeats_follow_ceil_on_the_published_variants():
    # the depth coefficients of B1-B7 never land on an integer, so the float guard never differs
    # from the official int(math.ceil(d * n))
    for depth in (1.1, 1.2, 1.4, 1.8, 2.2, 2.6, 3.1):
        for n in (1, 2, 3, 4):
            assert round_repeats(n, depth) == int(math.ceil(depth * n))
