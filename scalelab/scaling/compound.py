"""Compound scaling (Tan & Le, "EfficientNet", ICML 2019, §3.3): a spec in, a new spec out.

Depth multiplies each stage's repeats (rounded up), width multiplies every channel count
(``Channels``-typed fields, marked ``scale: width``; rounded to a multiple of the divisor, never
below 90% of the target), and resolution sets the input size. Nothing is mutated: specs are frozen
pydantic models and every changed block is validated anew.
"""

from __future__ import annotations

import functools
import typing
from typing import Any, Optional

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from scalelab.blocks import Block
from scalelab.errors import ScalelabError
from scalelab.scaling.rounding import round_channels, round_repeats, round_resolution
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
    ``scale_width: false`` keeps its channels, and so does everything nested in it."""
    if width == 1.0 or not block.scale_width:
        return block
    updates: dict[str, Any] = {}
    marked = width_fields(type(block))
    for name in type(block).model_fields:
        value = getattr(block, name)
        if name in marked:
            updates[name] = _scale_value(value, width, divisor)
        elif _holds_blocks(value):
            updates[name] = _nested(value, width, divisor)
    if not updates:
        return block
    data = _dump(block)
    aliases = {name: (info.alias or name) for name, info in type(block).model_fields.items()}
    data.update({aliases[name]: value for name, value in updates.items()})
    return type(block).model_validate(data)


def _describe(spec: Spec, depth: float, width: float, resolution: tuple[int, int], divisor: int) -> str:
    size = resolution[0] if resolution[0] == resolution[1] else f"{resolution[0]}x{resolution[1]}"
    note = (f"Scaled from {spec.name}: depth x{depth:g} (stage repeats rounded up), width x{width:g} "
            f"(channels to a multiple of {divisor}, never below 90%), input {size}.")
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
        size = tuple(round_resolution(v, 1.0, resolution_multiple) for v in pair)

    entries = []
    for entry in spec.blocks:
        if isinstance(entry, Stage):
            data = _dump(entry)
            data["repeat"] = round_repeats(entry.repeat, depth) if entry.scale_depth else entry.repeat
            data["block"] = _dump(scale_block(entry.block, width, divisor))
            entries.append(data)
        else:
            entries.append(_dump(scale_block(entry, width, divisor)))

    same = (depth, width, size) == (1.0, 1.0, spec.input.resolution)
    # Validated anew as a whole, as if read from YAML; the result has no source file.
    return Spec.model_validate({
        "name": name or default_name(spec.name, depth, width, size),
        "description": _describe(spec, depth, width, size, divisor),
        "input": {"channels": spec.input.channels, "resolution": size},
        # The base's published accuracy no longer describes a scaled network; estimators read it
        # from the base spec.
        "reference": _dump(spec.reference) if same and spec.reference else None,
        "defaults": spec.defaults.model_dump(mode="json", exclude_none=True),
        "stochastic_depth": _dump(spec.stochastic_depth) if spec.stochastic_depth else None,
        "blocks": entries,
    })


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
