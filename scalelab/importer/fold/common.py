"""What the candidate builders share: a block's settings read whole (defaults filled in), and the
fields written back with only what differs from each kind's defaults, as the importer writes them."""

from __future__ import annotations

from typing import Any, Optional

from scalelab.blocks import KINDS
from scalelab.blocks.layers import Shape
from scalelab.importer.fold.exact import fold_as
from scalelab.importer.fold.items import Item


def settings(item: Item) -> Any:
    """The item's block with every field (its kind's defaults filled in)."""
    return KINDS[item.kind].model_validate(item.fields)


def _is_default(kind: str, key: str, value: Any) -> bool:
    info = KINDS[kind].model_fields.get(key)
    if info is None or info.is_required():
        return False
    default = info.default
    if isinstance(default, tuple) and not isinstance(value, tuple):
        value = tuple(value) if isinstance(value, list) else (value,) * len(default)
    return value == default


def _inner(value: Any) -> Any:
    """Blocks inside a block (a wrap's body, an inception's branches) written as blocks are."""
    if isinstance(value, dict) and "kind" in value:
        return written(value)
    return [_inner(v) for v in value] if isinstance(value, list) else value


def written(fields: dict) -> dict:
    """``fields`` without the values its kind takes by default (``kind`` first), inner blocks too."""
    kind = fields["kind"]
    return {"kind": kind, **{k: _inner(v) for k, v in fields.items() if k != "kind" and v is not None
                             and not _is_default(kind, k, v)}}


def single(value: Any) -> Any:
    """7 for (7, 7): a square kernel or stride written as one number, as the zoo writes it."""
    return value[0] if isinstance(value, tuple) and len(set(value)) == 1 else list(value) if isinstance(value, tuple) else value


def stride_between(in_shape: Shape, out_shape: Shape) -> Optional[int]:
    """The one stride that takes the input's size to the output's, if there is one."""
    if len(in_shape) != 3 or len(out_shape) != 3:
        return None
    strides = {-(-i // o) for i, o in zip(in_shape[1:], out_shape[1:]) if o}
    return strides.pop() if len(strides) == 1 else None


def first_exact(candidates: list[dict], region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    """The first candidate (fields) that states the region exactly, folded."""
    for fields in candidates:
        folded = fold_as(written(fields), region, shape, name, inputs)
        if folded is not None:
            return folded
    return None


def kinds_of(region: list[Item]) -> list[str]:
    return [item.kind for item in region]
