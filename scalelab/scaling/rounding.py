"""Rounding rules of compound scaling, as the official EfficientNet implementation applies them
(tensorflow/tpu ``efficientnet_model.round_filters`` / ``round_repeats``; torchvision's
``_make_divisible`` and ``MBConvConfig.adjust_depth`` are the same rules)."""

from __future__ import annotations

import math

from scalelab.errors import ScalelabError


def round_channels(channels: int, multiplier: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``channels * multiplier`` to the nearest multiple of ``divisor`` (halves round up), at least
    ``min_value`` (default: the divisor), and never below 90% of the target: a rounding that lost
    more than 10% gets one divisor back. E.g. 32 x 1.1 = 35.2 -> 32; 40 x 1.4 = 56 -> 56;
    16 x 0.25 = 4 -> 8 (the floor)."""
    if multiplier <= 0:
        raise ScalelabError(f"width multiplier must be positive, got {multiplier}")
    if divisor < 1:
        raise ScalelabError(f"channel divisor must be a positive integer, got {divisor}")
    target = channels * multiplier
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(target + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * target:
        rounded += divisor
    return rounded


def round_repeats(repeats: int, multiplier: float) -> int:
    """Stage repeats times the depth multiplier, rounded up (a stage never loses its last block)."""
    if multiplier <= 0:
        raise ScalelabError(f"depth multiplier must be positive, got {multiplier}")
    # The small tolerance keeps 3 x 1.1 (= 3.3000000000000003) and 10 x 1.1 (= 11.000000000000002)
    # from rounding up one block too many through float noise.
    return max(1, math.ceil(repeats * multiplier - 1e-9))


def round_resolution(resolution: int, multiplier: float, multiple: int = 1) -> int:
    """``resolution * multiplier`` to the nearest multiple of ``multiple`` (at least one multiple).

    The published EfficientNets give each variant's resolution explicitly (B1 240, B2 260, ...)
    rather than computing gamma**phi x 224, so the multiple is the user's choice: 1 (exact), 8 or
    32 (friendlier to hardware and to networks that downsample by 32)."""
    if multiplier <= 0:
        raise ScalelabError(f"resolution multiplier must be positive, got {multiplier}")
    if multiple < 1:
        raise ScalelabError(f"resolution multiple must be a positive integer, got {multiple}")
    return max(multiple, int(round(resolution * multiplier / multiple)) * multiple)
