"""Compound scaling (Tan & Le, "EfficientNet", ICML 2019, §3.3): a spec in, a new spec out.

Depth multiplies each stage's repeats (rounded up; a spec with no stage to deepen is refused),
width multiplies every channel count (``Channels``-typed fields, marked ``scale: width``; rounded to a
multiple of the divisor, never below 90% of the target; ``scaling.widths``), following the wiring
where counts are tied (``scaling.wired``), and resolution sets the input size. A count marked as
dividing a channel field (``groups``) joins its divisor by least common multiple, so a scaled
network still builds. Nothing is mutated: specs are frozen pydantic models and every changed block is
validated anew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from pydantic import ValidationError

from scalelab.errors import ScalelabError
from scalelab.scaling.rounding import round_repeats, round_resolution
from scalelab.scaling.transformer import patch_multiple, prepare
from scalelab.scaling.widths import dump
from scalelab.scaling.widths import input_divisor as input_divisor  # block-level width scaling lives there
from scalelab.scaling.widths import scale_block as scale_block
from scalelab.scaling.widths import width_fields as width_fields
from scalelab.scaling.wired import scaled_entries
from scalelab.spec.load import describe_error, yaml_path
from scalelab.spec.model import Spec, Stage

#: EfficientNet's grid-searched coefficients at phi = 1 (alpha * beta^2 * gamma^2 ~ 2)
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


def _describe(spec: Spec, depth: float, width: float, resolution: tuple[int, int], divisor: int) -> str:
    size = resolution[0] if resolution[0] == resolution[1] else f"{resolution[0]}x{resolution[1]}"
    note = (f"Scaled from {spec.name}: depth x{depth:g} (stage repeats rounded up), width x{width:g} "
            f"(channels to a multiple of {divisor} or of its lcm with their groups, never below 90%), input {size}.")
    return f"{spec.description.rstrip()} {note}".strip()


def _check_multiplier(what: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ScalelabError(f"{what} multiplier must be a positive number, got {value!r}")
    return float(value)


def _input_size(spec: Spec, resolution: "int | tuple[int, int] | None", multiple: int) -> tuple[int, int]:
    """The scaled input: ``resolution`` pixels rounded to ``multiple`` and, where a patch embedding
    takes the input, to whole patches (it sees nothing else); None keeps the spec's."""
    if resolution is None:
        return spec.input.resolution
    pair = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if len(pair) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in pair):
        raise ScalelabError(f"resolution must be a positive number of pixels, got {resolution!r}")
    multiple = math.lcm(multiple, patch_multiple(spec))
    return round_resolution(pair[0], 1.0, multiple), round_resolution(pair[1], 1.0, multiple)


def scale_spec(
    spec: Spec,
    depth: float = 1.0,
    width: float = 1.0,
    resolution: "int | tuple[int, int] | None" = None,
    *,
    divisor: int = 8,
    resolution_multiple: int = 1,
    name: Optional[str] = None,
) -> Spec:
    """A new spec: stage repeats x ``depth``, channels x ``width``, input size ``resolution``
    (absolute, in pixels; None keeps the spec's, and it is rounded to ``resolution_multiple``).

    Stages with ``scale_depth: false`` keep their repeats; blocks with ``scale_width: false`` keep
    their channels (e.g. a classifier of fixed width). A linear layer's ``out`` is a feature count,
    not channels, so the 1000-way classifier never scales."""
    depth = _check_multiplier("depth", depth)
    width = _check_multiplier("width", width)
    if divisor < 1:
        raise ScalelabError(f"channel divisor must be a positive integer, got {divisor}")
    size = _input_size(spec, resolution, resolution_multiple)
    _check_deepens(spec, depth)
    entries = []
    prepared = prepare(spec, width, divisor)  # a transformer's embedding width in whole heads
    for entry, block in scaled_entries(prepared.spec, width, prepared.divisor):
        if isinstance(entry, Stage):
            data = dump(entry)
            data["repeat"] = round_repeats(entry.repeat, depth) if entry.scale_depth else entry.repeat
            data["block"] = dump(block)
            entries.append(data)
        else:
            entries.append(dump(block))

    same = (depth, width, size) == (1.0, 1.0, spec.input.resolution)
    # Validated anew as a whole, as if read from YAML; the result has no source file.
    data = {
        "name": name or default_name(spec.name, depth, width, size),
        "description": " ".join(filter(None, (_describe(spec, depth, width, size, divisor), prepared.note(size)))),
        "input": {"channels": spec.input.channels, "resolution": size},
        # The base's published accuracy no longer describes a scaled network; estimators read it
        # from the base spec.
        "reference": dump(spec.reference) if same and spec.reference else None,
        "defaults": spec.defaults.model_dump(mode="json", exclude_none=True),
        "stochastic_depth": dump(spec.stochastic_depth) if spec.stochastic_depth else None,
        "blocks": entries,
    }
    try:
        scaled = Spec.model_validate(data)
    except ValidationError as exc:  # e.g. channels or repeats scaled past the bounds
        path, message = describe_error(exc.errors(include_url=False)[0], data)
        raise ScalelabError(f"{data['name']}: {yaml_path(path)}: {message}") from None
    # entries keep their places, so an error in a scaled block points at the base's file and line
    return scaled.located(spec.source)



def _check_deepens(spec: Spec, depth: float) -> None:
    """Depth multiplies stage repeats; a spec with no stage to deepen is told so, never scaled in
    width alone as if depth had applied."""
    if depth == 1.0 or any(isinstance(e, Stage) and e.scale_depth for e in spec.blocks):
        return
    raise ScalelabError(
        f"{spec.name}: depth x{depth:g} cannot apply: depth scaling multiplies the repeats of the spec's stages "
        f"(`stage` entries with `repeat`), and this spec has no stage to deepen: every block is written once (as "
        f"an import writes those that fold into no stage); scale its width and resolution only (leave out "
        f"--depth, or give --alpha 1 with --phi)")


def default_name(base: str, depth: float, width: float, resolution: tuple[int, int]) -> str:
    size = resolution[0] if resolution[0] == resolution[1] else f"{resolution[0]}x{resolution[1]}"
    return f"{base}-d{depth:g}-w{width:g}-r{size}"


def compound_coefficients(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> tuple[float, float, float]:
    """(depth, width, resolution) multipliers: alpha^phi, beta^phi, gamma^phi (EfficientNet eq. 3).
    With alpha * beta^2 * gamma^2 ~ 2 the MACs grow by about 2^phi."""
    for what, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not value >= 1:
            raise ScalelabError(f"{what} must be at least 1 (EfficientNet eq. 3), got {value}")
    return alpha ** phi, beta ** phi, gamma ** phi


def scale_compound(
    spec: Spec,
    phi: float,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    *,
    divisor: int = 8,
    resolution_multiple: int = 1,
    name: Optional[str] = None,
) -> Spec:
    """Compound scaling by ``phi``: the input size becomes round(gamma^phi x base size) to the
    chosen multiple."""
    d, w, r = compound_coefficients(phi, alpha, beta, gamma)
    h, wd = spec.input.resolution
    size = (round_resolution(h, r, resolution_multiple), round_resolution(wd, r, resolution_multiple))
    return scale_spec(spec, d, w, size, divisor=divisor, resolution_multiple=resolution_multiple, name=name)


@dataclass(frozen=True)
class DepthLevel:
    """One network depth scaling can build: the multiplier that builds it, and what it builds."""

    multiplier: float  # the smallest multiplier in the range that builds these repeats
    blocks: int  # repeated blocks built (stage repeats summed)
    ratio: float  # blocks / the base's blocks: the depth actually built (1.0 without stages)


def depth_levels(spec: Spec, low: float, high: float) -> list[DepthLevel]:
    """The distinct networks depth multipliers in [low, high] build, shallowest first.

    Stage repeats round up (``round_repeats``), so each stage changes only where the multiplier
    crosses k / repeats; between two such points every multiplier builds the same network. The
    total grows at each crossing, so distinct repeats and distinct block counts coincide."""
    repeats = [e.repeat for e in spec.blocks if isinstance(e, Stage) and e.scale_depth]
    base = sum(repeats)
    if not repeats:
        return [DepthLevel(1.0, 0, 1.0)]
    points = {low, high} | {k / r for r in set(repeats) for k in range(1, math.ceil(r * high) + 1) if low <= k / r <= high}
    levels, seen = [], set()
    for m in sorted(points):
        built = tuple(round_repeats(r, m) for r in repeats)
        if built not in seen:
            seen.add(built)
            levels.append(DepthLevel(m, sum(built), sum(built) / base))
    return levels


def nearest_level(levels: list[DepthLevel], ratio: float) -> DepthLevel:
    """The level whose built depth is nearest ``ratio`` (on a log scale: x2 and x0.5 are as far)."""
    return min(levels, key=lambda lv: (abs(math.log(lv.ratio / ratio)), lv.ratio))
