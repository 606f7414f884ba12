"""A transformer's region as the token kinds state it: the operators an import writes where a kind
writes nothing or writes them otherwise, read the kind's way before exactness compares layer for
layer. Each rewrite computes the same tensor at the same cost in every face:

* a dropout of rate 0 (timm's ``proj_drop``, ``pos_drop``, ``head_drop``) returns its input itself,
  training included (aten's ``_dropout_impl``; its layer keeps nothing), and an expand to the shape
  it is given (a class token's batch expand, per sample (1, features) to (1, features)) is a view:
  neither is a layer of the kinds, so readers read their input;
* a ``cat`` along the per-sample first axis is the ``concat`` merge (the patch embedding's tokens
  before the patches);
* a ``binary`` add of two tensors of one shape (the position embedding's) is the ``add`` merge;
* a ``select`` or a ``reduce`` along non-negative axes is the same along the axes counted from the
  end (``token_pool``'s class token, ``Select(-2, 0)``, and its mean, ``Reduce("mean", (-2,))``).

None where a rewritten item would hold source state (these operators hold none) or does not build."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from scalelab.importer.fold.common import settings
from scalelab.importer.fold.exact import candidate_layers
from scalelab.importer.fold.items import Item, Layer, signature


def _identity(item: Item) -> bool:
    if item.kind == "dropout":
        return settings(item).p == 0 and len(item.inputs) == 1
    return item.kind == "expand" and len(item.inputs) == 1 and item.in_shape == item.out_shape


def _restated(item: Item) -> "dict | None":
    """The fields the kinds' layers use for ``item``, where they differ from the import's."""
    rank = len(item.out_shape)
    if item.kind == "cat" and isinstance(item.in_shape, list) and settings(item).dim % rank == 0:
        return {"kind": "concat"}
    if item.kind == "binary" and isinstance(item.in_shape, list) and len(set(item.in_shape)) == 1:
        fields = settings(item)
        return {"kind": "add"} if fields.op == "add" and fields.alpha == 1 else None
    if item.kind == "select" and settings(item).dim >= 0 and not isinstance(item.in_shape, list):
        return {**item.fields, "dim": settings(item).dim - len(item.in_shape)}
    if item.kind == "reduce" and not isinstance(item.in_shape, list) and all(d >= 0 for d in settings(item).dims):
        return {**item.fields, "dims": [d - len(item.in_shape) for d in settings(item).dims]}
    return None


def _figures(signatures: list) -> list[tuple]:
    """A layer's figures (parameters, MACs, ops, elements in and out, weight ops) without its label
    and node, which a restatement changes."""
    return [sig[1:7] for sig in signatures]


def _rebuilt(item: Item, fields: dict) -> Optional[Item]:
    """``item`` as ``fields`` state it, where that holds no state and costs what the item costs."""
    if item.state:
        return None
    stated = candidate_layers(fields, item.in_shape)  # type: ignore[arg-type]  # a merge takes its inputs' shapes
    if stated is None or stated[0] != item.out_shape:
        return None
    layers = [Layer(signature(c), []) for c in stated[1]]
    if _figures([layer.signature for layer in layers]) != _figures([layer.signature for layer in item.layers]):
        return None
    return replace(item, fields=fields, layers=layers, node=stated[2])


def token_region(region: list[Item]) -> Optional[list[Item]]:
    """The region with identities left out (their readers reading their input) and restated items
    rewritten; copies, so that a candidate that fails leaves the region as it was."""
    through: dict[str, str] = {}
    out: list[Item] = []
    for item in region:
        inputs = [through.get(t, t) for t in item.inputs]
        if _identity(item) and not item.state:
            through[item.name] = inputs[0]
            continue
        fields = _restated(item)
        copy = replace(item, inputs=inputs)
        if fields is not None:
            rebuilt = _rebuilt(copy, fields)
            if rebuilt is None:
                return None
            copy = rebuilt
        out.append(copy)
    return out if out else None
