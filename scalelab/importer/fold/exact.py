"""Exactness: a candidate block replaces a region only if the layers it states (the same cost rows
analysis derives: each layer's kind, shape, parameters and MACs) are the region's layers one for
one, each reading what its counterpart reads. The folded block then holds the region's source
state in its own layers' order."""

from __future__ import annotations

from typing import Optional

from pydantic import ValidationError

from scalelab.blocks import KINDS
from scalelab.blocks.layers import Shape, ShapeError, walk
from scalelab.importer.fold.flow import ALL_PIECES, IN, Flow, Unwired, reads_alike
from scalelab.importer.fold.items import Item, Layer, signature


def candidate_layers(fields: dict, in_shape: Shape) -> "tuple[Shape, list, object] | None":
    """The output shape, the cost rows and the layer tree of the block ``fields`` states at
    ``in_shape``, or None where the kind refuses these settings or this input."""
    try:
        block = KINDS[fields["kind"]].model_validate(fields)
        node = block.layers(in_shape)
        result = walk(node, in_shape)
    except (ValidationError, ShapeError, ValueError, KeyError, TypeError):
        return None
    return result.out, result.costs, node


def region_flow(region: list[Item], source: str) -> "tuple[Flow, str] | None":
    """The region's layers' data flow (its items' layers in order) and the id of its output."""
    flow, made, pieces = Flow(), {source: IN}, dict[str, int]()
    try:
        for item in region:
            reads = [made[t] for t in item.inputs]
            producer = reads[0].rpartition(".")[0] if reads else ""
            if len(reads) > 1 and reads == [f"{producer}.{k}" for k in range(pieces.get(producer, 0))]:
                reads = [producer + ALL_PIECES]  # every piece of one layer, in order, as a block states it
            out = flow.run(item.node, reads)
            pieces[out] = len(item.parts)
            made[item.name] = out
            made.update((t, f"{out}.{k}") for k, t in enumerate(item.parts))
    except (Unwired, KeyError):
        return None
    return flow, made[region[-1].name]


def _mapped(mapped: dict[str, str], read: str) -> str:
    """The region's id of a stated read (a layer's, or all of a layer's pieces)."""
    if read.endswith(ALL_PIECES) and read[:-len(ALL_PIECES)] in mapped:
        return mapped[read[:-len(ALL_PIECES)]] + ALL_PIECES
    return mapped.get(read, "?")


def _match(costs: list, stated: Flow, out: str, layers: list[Layer], found: Flow, found_out: str) -> "list[int] | None":
    """The region layer each stated layer is (in the stated order): same signature, reading the
    counterparts of what the stated layer reads; the next region layer after the previous match
    is preferred (a conv's norm is the one that follows it)."""
    if len(costs) != len(layers) or len(stated.reads) != len(costs) or len(found.reads) != len(layers):
        return None
    mapped, used, picks, last = {IN: IN}, [False] * len(layers), [], -1
    for i, cost in enumerate(costs):
        sig, reads = signature(cost), [_mapped(mapped, r) for r in stated.reads[i]]

        def fits(j: int) -> bool:
            return not used[j] and layers[j].signature == sig and reads_alike(cost.label, found.reads[j], reads)

        order = [last + 1] if last + 1 < len(layers) else []
        pick = next((j for j in order + list(range(len(layers))) if fits(j)), None)
        if pick is None:
            return None
        used[pick], last, mapped[str(i)] = True, pick, str(pick)
        picks.append(pick)
    return picks if mapped.get(out) == found_out else None


def fold_as(fields: dict, region: list[Item], in_shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    """The folded item if ``fields`` states exactly the region's layers and their data flow, else None."""
    stated = candidate_layers(fields, in_shape)
    found = region_flow(region, inputs[0])
    if stated is None or found is None or stated[0] != region[-1].out_shape:
        return None
    out, costs, node = stated
    flow = Flow()
    try:
        stated_out = flow.run(node, [IN])
    except Unwired:
        return None
    layers = [layer for item in region for layer in item.layers]
    picks = _match(costs, flow, stated_out, layers, found[0], found[1])
    if picks is None:
        return None
    return Item(name, fields, inputs, in_shape, out, [Layer(signature(c), layers[j].state) for c, j in zip(costs, picks)],
                node=node, folded=True, members=list(region))
