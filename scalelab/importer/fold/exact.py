"""Exactness: a candidate block replaces a region only if the layers it states (the same cost rows
analysis derives, each layer's kind, shape, parameters and MACs) are the region's layers, one for
one. The folded block then holds the region's source state in its own layers' order."""

from __future__ import annotations

from collections import Counter
from typing import Optional

from pydantic import ValidationError

from scalelab.blocks import KINDS
from scalelab.blocks.layers import Shape, ShapeError, walk
from scalelab.importer.fold.items import Item, Layer, signature


def candidate_layers(fields: dict, in_shape: Shape) -> "tuple[Shape, list] | None":
    """The output shape and the cost rows of the block ``fields`` states at ``in_shape``, or None
    where the kind refuses these settings or this input."""
    try:
        block = KINDS[fields["kind"]].model_validate(fields)
        result = walk(block.layers(in_shape), in_shape)
    except (ValidationError, ShapeError, ValueError, KeyError, TypeError):
        return None
    return result.out, result.costs


def _assign(costs: list, layers: list[Layer]) -> "list[Layer] | None":
    """The region layer each candidate layer is, in the candidate's order: the next one after the
    previous match where that one fits (so a conv's norm is the norm that follows it), else the
    first unused one with the same signature."""
    used = [False] * len(layers)
    out, last = [], -1
    for cost in costs:
        sig = signature(cost)
        pick = last + 1 if last + 1 < len(layers) and not used[last + 1] and layers[last + 1].signature == sig else None
        if pick is None:
            pick = next((i for i, layer in enumerate(layers) if not used[i] and layer.signature == sig), None)
        if pick is None:
            return None
        used[pick], last = True, pick
        out.append(layers[pick])
    return out if all(used) else None


def fold_as(fields: dict, region: list[Item], in_shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    """The folded item if ``fields`` states exactly the region's layers, else None."""
    stated = candidate_layers(fields, in_shape)
    if stated is None or stated[0] != region[-1].out_shape:
        return None
    out, costs = stated
    layers = [layer for item in region for layer in item.layers]
    if Counter(signature(c) for c in costs) != Counter(layer.signature for layer in layers):
        return None
    assigned = _assign(costs, layers)
    if assigned is None:
        return None
    return Item(name, fields, inputs, in_shape, out, [Layer(signature(c), a.state) for c, a in zip(costs, assigned)],
                folded=True, members=list(region))
