"""Compound scaling (Tan & Le, "EfficientNet", ICML 2019, §3.3): a spec in, a new spec out.

Depth multiplies each stage's repeats (rounded up), width multiplies every channel count
(``Channels``-typed fields, marked ``scale: width``; rounded to a multiple of the divisor, never
below 90% of the target), and resolution sets the input size. A count marked as dividing a channel
field (``groups``) joins its divisor by least common multiple, so a scaled network still builds. Nothing is mutated: specs are frozen
pydantic models and every changed block is validated anew.
"""

from __future__ import annotations

import functools
import math
import typing
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from scalelab.blocks import Block
from scalelab.errors import ScalelabError
from scalelab.scaling.rounding import round_channels, round_repeats, round_resolution
from scalelab.spec.load import describe_error, yaml_path
from scalelab.spec.model import Spec, Stage

#: EfficientNet's grid-searched coefficients at phi = 1 (alpha * beta^2 * gamma^2 ~ 2)
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


def _marks_width(info: Any) -> bool:
    extra = getattr(info, "json_schema_extra", None)
    return isinstance(extra, dict) and extra.get("scale") == "width"


def _annotation_marks_width(annotation: Any) -> bool:
    """Whether ``Channels`` appears in a type, also inside Optional[...] or list[...]."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        return any(isinstance(m, FieldInfo) and _marks_width(m) for m in metadata) or _annotation_marks_width(base)
    return any(_annotation_marks_width(arg) for arg in typing.get_args(annotation))


@functools.cache
def width_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    """Names of a block kind's fields that width scaling multiplies."""
    return tuple(
        name for name, info in cls.model_fields.items()
        if _marks_width(info) or _annotation_marks_width(info.annotation)
    )


#: the field marker that names the channel fields a count must divide (a conv's ``groups``, a block
#: kind's group width): ``json_schema_extra={"divides": ["mid"]}``; "input" names the block's input
#: channels, which come from whatever block precedes it
DIVIDES = "divides"


@functools.cache
def divider_fields(cls: type[BaseModel]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(field, the channel fields it divides) for each field of a block kind marked ``divides``."""
    out = []
    for name, info in cls.model_fields.items():
        extra = getattr(info, "json_schema_extra", None)
        if isinstance(extra, dict) and extra.get(DIVIDES):
            out.append((name, tuple(extra[DIVIDES])))
    return tuple(out)


def _dividers(block: Block, target: str) -> list[int]:
    """The values (above 1) of the block's fields that must divide ``target``."""
    values = []
    for name, targets in divider_fields(type(block)):
        value = getattr(block, name)
        if target in targets and isinstance(value, int) and not isinstance(value, bool) and value > 1:
            values.append(value)
    return values


def _blocks_of(value: Any):
    """Every block in a spec entry or a field, nested ones included."""
    if isinstance(value, Stage):
        yield from _blocks_of(value.block)
    elif isinstance(value, Block):
        yield value
        for name in type(value).model_fields:
            if _holds_blocks(getattr(value, name)):
                yield from _blocks_of(getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _blocks_of(v)


def input_divisor(spec: Spec) -> int:
    """The least common multiple of every count that must divide some block's input channels (a
    grouped conv's groups). The input comes from any block before it, so every scaled channel count
    keeps it."""
    return math.lcm(1, *(v for b in _blocks_of(spec.blocks) for v in _dividers(b, "input")))


def _scale_value(value: Any, width: float, divisor: int) -> Any:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return type(value)(_scale_value(v, width, divisor) for v in value)
    return round_channels(value, width, divisor)


def _nested(value: Any, width: float, divisor: int) -> Any:
    """Blocks nested in a field (an inception's branches) scale too."""
    if isinstance(value, Block):
        return scale_block(value, width, divisor)
    if isinstance(value, (list, tuple)):
        return [_nested(v, width, divisor) for v in value]
    return value


def _holds_blocks(value: Any) -> bool:
    if isinstance(value, Block):
        return True
    return isinstance(value, (list, tuple)) and any(_holds_blocks(v) for v in value)


def scale_block(block: Block, width: float, divisor: int = 8) -> Block:
    """A copy of ``block`` with its channel counts multiplied by ``width``. A block with
    ``scale_width: false`` keeps its channels, and so does everything nested in it.

    Each channel field rounds to a multiple of lcm(divisor, every count marked as dividing it): a
    ResNeXt bottleneck's ``mid`` with 32 groups rounds to multiples of lcm(8, 32) = 32."""
    if width == 1.0 or not block.scale_width:
        return block
    updates: dict[str, Any] = {}
    marked = width_fields(type(block))
    for name in type(block).model_fields:
        value = getattr(block, name)
        if name in marked and value is not None:  # a channel count left out (hidden: use expand) stays out
            updates[name] = _scale_value(value, width, math.lcm(divisor, *_dividers(block, name)))
        elif _holds_blocks(value):
            updates[name] = _nested(value, width, divisor)
    if not updates:
        return block
    data = _dump(block)
    aliases = {name: (info.alias or name) for name, info in type(block).model_fields.items()}
    data.update({aliases[name]: value for name, value in updates.items()})
    try:
        return type(block).model_validate(data)
    except ValidationError as exc:  # channels scaled past the bounds
        path, message = describe_error(exc.errors(include_url=False)[0], data)
        raise ScalelabError(f"block '{block.name or block.kind}' at width x{width:g}: {yaml_path(path)}: {message}") from None


def _describe(spec: Spec, depth: float, width: float, resolution: tuple[int, int], divisor: int) -> str:
    size = resolution[0] if resolution[0] == resolution[1] else f"{resolution[0]}x{resolution[1]}"
    note = (f"Scaled from {spec.name}: depth x{depth:g} (stage repeats rounded up), width x{width:g} "
            f"(channels to a multiple of {divisor} or of its lcm with their groups, never below 90%), input {size}.")
    return f"{spec.description.rstrip()} {note}".strip()


def _check_multiplier(what: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ScalelabError(f"{what} multiplier must be a positive number, got {value!r}")
    return float(value)


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
    if resolution is None:
        size = spec.input.resolution
    else:
        pair = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        if len(pair) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in pair):
            raise ScalelabError(f"resolution must be a positive number of pixels, got {resolution!r}")
        rows, cols = (round_resolution(v, 1.0, resolution_multiple) for v in pair)
        size = (rows, cols)

    channel_divisor = math.lcm(divisor, input_divisor(spec))
    entries = []
    for entry in spec.blocks:
        if isinstance(entry, Stage):
            data = _dump(entry)
            data["repeat"] = round_repeats(entry.repeat, depth) if entry.scale_depth else entry.repeat
            data["block"] = _dump(scale_block(entry.block, width, channel_divisor))
            entries.append(data)
        else:
            entries.append(_dump(scale_block(entry, width, channel_divisor)))

    same = (depth, width, size) == (1.0, 1.0, spec.input.resolution)
    # Validated anew as a whole, as if read from YAML; the result has no source file.
    data = {
        "name": name or default_name(spec.name, depth, width, size),
        "description": _describe(spec, depth, width, size, divisor),
        "input": {"channels": spec.input.channels, "resolution": size},
        # The base's published accuracy no longer describes a scaled network; estimators read it
        # from the base spec.
        "reference": _dump(spec.reference) if same and spec.reference else None,
        "defaults": spec.defaults.model_dump(mode="json", exclude_none=True),
        "stochastic_depth": _dump(spec.stochastic_depth) if spec.stochastic_depth else None,
        "blocks": entries,
    }
    try:
        scaled = Spec.model_validate(data)
    except ValidationError as exc:  # e.g. channels or repeats scaled past the bounds
        path, message = describe_error(exc.errors(include_url=False)[0], data)
        raise ScalelabError(f"{data['name']}: {yaml_path(path)}: {message}") from None
    # entries keep their places, so an error in a scaled block points at the base's file and line
    return scaled.located(spec.source)


def _dump(model: BaseModel) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


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
