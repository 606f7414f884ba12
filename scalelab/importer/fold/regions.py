"""Regions: runs of consecutive items under one module prefix (``layer1.0``, ``features.3``,
``blocks.2.1``) that read one tensor from outside and whose last item alone is read from outside.
Such a run is one block's worth of the module, and a candidate block may replace it."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from scalelab.blocks.layers import Shape
from scalelab.importer.fold.items import Item

#: (region, its input shape, the name and inputs of the block to be) -> the folded item or None
Folder = Callable[[list[Item], Shape, str, list[str]], Optional[Item]]


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _runs(items: list[Item], prefix: str) -> list[tuple[int, int]]:
    """(start, end) of each maximal run of at least two consecutive items under ``prefix``."""
    runs, start = [], None
    for i, item in enumerate([*items, None]):  # a sentinel ends the last run
        inside = item is not None and not item.training_only and _under(item.name, prefix)
        if inside and start is None:
            start = i
        elif not inside and start is not None:
            if i - start >= 2:
                runs.append((start, i))
            start = None
    return runs


def boundary(items: list[Item], start: int, end: int) -> "str | None":
    """The one tensor the run reads from outside, if it reads one and only its last item's output is
    read after it (by any item, training-only heads included)."""
    run = items[start:end]
    made = {t for item in run for t in item.tensors()}
    outside = {t for item in run for t in item.inputs if t not in made}
    if len(outside) != 1 or run[-1].parts:
        return None
    inner = made - {run[-1].name}
    if any(t in inner for item in items[:start] + items[end:] for t in item.inputs):
        return None
    return outside.pop()


def fold_regions(items: list[Item], folders: Sequence[Folder], shapes: dict[str, Shape], deepest: bool) -> list[Item]:
    """Fold regions, the deepest first (inner blocks, that a block around them then holds) or the
    widest first; a region no folder states stays as it is. ``shapes``: every tensor's, updated
    with each folded block's."""
    prefixes = sorted({p for item in items for p in _prefixes(item.name)}, key=lambda p: p.count("."), reverse=deepest)
    for prefix in prefixes:
        for start, end in reversed(_runs(items, prefix)):
            source = boundary(items, start, end)
            shape = shapes.get(source) if source is not None else None
            if source is None or shape is None or any(i.name == prefix for i in items):
                continue
            region = items[start:end]
            folded = next((f for fold in folders if (f := fold(region, shape, prefix, [source])) is not None), None)
            if folded is not None:
                _rename(items, region[-1].name, prefix)
                shapes[prefix] = folded.out_shape
                items[start:end] = [folded]
    return items


def _rename(items: list[Item], old: str, new: str) -> None:
    """Later items read the folded block where they read the region's last item."""
    for item in items:
        item.inputs = [new if t == old else t for t in item.inputs]
