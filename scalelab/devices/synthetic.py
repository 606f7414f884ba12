"""Synthetic networks for latency calibration: a fixed, seeded set of small specs built from the
project's own block kinds, deliberately unlike any network of the zoo (random widths, depths,
kernels, strides and resolutions), so that the zoo can judge a profile fitted on them.

Three families share one generator: dense (a conv stem, maybe a max pool, basic residual and
bottleneck stages), grouped (bottleneck stages with grouped 3x3 convolutions) and mobile (inverted
residual / MBConv stages with and without squeeze-excite, a 1x1 head). Every network starts with a
convolution on the 3-channel input (a thin-input stem) and ends with global pooling and a linear
classifier. Pure data: no torch here.
"""

from __future__ import annotations

import random

from scalelab.spec import parse_spec
from scalelab.spec.model import Spec

SEED = 20190528  # fixed: the set must be the same on every machine and every run
COUNT = 36
RESOLUTIONS = (64, 96, 128, 160, 192, 224)
FAMILIES = ("dense", "grouped", "mobile")


def _width(rng: random.Random, low: int, high: int) -> int:
    return 8 * rng.randint(max(1, low // 8), max(1, high // 8))  # multiples of 8, as width scaling rounds


def _stages(rng: random.Random, family: str, width: int) -> list[str]:
    lines, count = [], rng.randint(3, 5)
    for i in range(count):
        width = min(320, max(8, _width(rng, width, int(width * 2.2))))
        stride = 2 if i > 0 and rng.random() < 0.7 else rng.choice((1, 2)) if i == 0 else 1
        repeat = rng.randint(1, 3)
        if family == "mobile":
            expand = rng.choice((1, 3, 4, 6, 6))
            se = f", se: {rng.choice((0.25, 0.25, 0.125))}" if rng.random() < 0.5 else ""
            block = f"{{kind: mbconv, out: {width}, expand: {expand}, kernel: {rng.choice((3, 5))}{se}}}"
        elif family == "grouped":
            mid = max(16, 16 * round(width * rng.choice((0.5, 1.0)) / 16))
            block = f"{{kind: bottleneck, out: {width}, mid: {mid}, groups: {rng.choice((4, 8, 16))}}}"
        elif rng.random() < 0.5:
            block = f"{{kind: residual, out: {width}}}"
        else:
            block = f"{{kind: bottleneck, out: {width}, mid: {max(8, _width(rng, width // 4, width // 2))}}}"
        lines.append(f"  - {{stage: s{i}, repeat: {repeat}, stride: {stride}, block: {block}}}")
    return lines


def synthetic_spec(index: int, seed: int = SEED) -> Spec:
    """The ``index``-th synthetic network (the same for a given seed on every machine)."""
    rng = random.Random(seed * 1000 + index)
    family = FAMILIES[index % len(FAMILIES)]
    resolution = rng.choice(RESOLUTIONS)
    stem = _width(rng, 8, 48)
    kernel = rng.choice((3, 3, 5, 7)) if family != "mobile" else 3
    lines = [f"name: synthetic_{index}_{family}", f"input: {{channels: 3, resolution: {resolution}}}", "blocks:",
             f"  - {{name: stem, kind: conv, out: {stem}, kernel: {kernel}, stride: 2}}"]
    if family != "mobile" and rng.random() < 0.6:
        lines.append("  - {name: pool, kind: maxpool, kernel: 3, stride: 2, padding: 1}")
    lines += _stages(rng, family, stem)
    if family == "mobile":
        lines.append(f"  - {{name: head, kind: conv, out: {_width(rng, 320, 1280)}, kernel: 1}}")
    lines += ["  - {name: gap, kind: global_avgpool}", f"  - {{name: fc, kind: linear, out: {rng.choice((10, 100, 1000))}}}"]
    return parse_spec("\n".join(lines) + "\n", f"<synthetic {index}>")


def synthetic_specs(count: int = COUNT, seed: int = SEED) -> list[Spec]:
    return [synthetic_spec(i, seed) for i in range(count)]
