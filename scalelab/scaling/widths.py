"""Width scaling of one block: which fields are channel counts (``Channels``-typed, or marked
``scale: width``), which counts must divide them (``divides``), and a block with its channels
multiplied. Wiring between blocks (which counts are tied to others) is ``scaling.wired``'s."""

from __future__ import annotations

import functools
import math
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from scalelab.blocks import Block
from scalelab.errors import ScalelabError
from scalelab.scaling.rounding import round_channels
from scalelab.spec.load import describe_error, yaml_path
from scalelab.spec.model import Spec, Stage


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
    data = dump(block)
    aliases = {name: (info.alias or name) for name, info in type(block).model_fields.items()}
    data.update({aliases[name]: value for name, value in updates.items()})
    try:
        return type(block).model_validate(data)
    except ValidationError as exc:  # channels scaled past the bounds
        path, message = describe_error(exc.errors(include_url=False)[0], data)
        raise ScalelabError(f"block '{block.name or block.kind}' at width x{width:g}: {yaml_path(path)}: {message}") from None


def dump(model: BaseModel) -> dict:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def widest_channels(network: Any) -> int:
    """The most channels a feature map of the network has (a block's (C, H, W) output), or, in a
    network of tokens with no feature map, the widest tokens ((N, C) outputs); 0 where neither is.
    A search reports the width built as this figure over the base's."""
    maps, tokens = [0], [0]
    for b in network.blocks.values():
        shape = b.out_shape
        if not b.source and len(shape) == 3:
            maps.append(shape[0])
        elif not b.source and len(shape) == 2:
            tokens.append(shape[1])
    return max(maps) or max(tokens)
