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
  end (``token_pool``'s class token, ``Select(-2, 0)``, and its mean, ``Reduce("mean", (-2,))``);
* a learned vector of the last axis's size times a tensor (timm's ``LayerScale``, ``x * gamma``: a
  ``param`` and a ``binary`` mul) is ``layer_scale`` with ``layout: channels_last``, one layer of
  the same parameters and ops;
* every index of a tensor's first axis selected, each piece through the same views to one reader
  (``nn.MultiheadAttention``'s q, k and v: ``proj[0]``, ``proj[1]``, ``proj[2]``, each viewed into
  heads, to attention) is those views on the whole tensor, the pieces along a new first axis, then
  an ``unbind`` of it: views either way, so nothing is computed, held or launched otherwise.

The layer scale holds the gamma's source state; no other rewritten item holds any. None where a
restated item would hold source state (these operators hold none) or does not build."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from scalelab.blocks.layers import Shape
from scalelab.importer.fold.common import settings
from scalelab.importer.fold.exact import candidate_layers
from scalelab.importer.fold.items import Item, Layer, Signature, signature

#: the figures of a signature that a rewrite of several layers into others keeps in sum:
#: parameters, MACs, ops, weight ops
_SUMMED = (1, 2, 3, 6)
#: views a piece may go through and the whole tensor then goes through instead
_VIEWS = ("reshape", "permute")


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


def _stated(item: Item, fields: dict, in_shape: Shape, inputs: list[str], state: list[str]) -> Optional[Item]:
    """``item`` rewritten as the block ``fields`` states on ``in_shape``, reading ``inputs`` and
    holding ``state`` in its one layer (or in none)."""
    stated = candidate_layers(fields, in_shape)
    if stated is None:
        return None
    layers = [Layer(signature(c), state if k == 0 else []) for k, c in enumerate(stated[1])]
    return replace(item, fields=fields, inputs=inputs, in_shape=in_shape, out_shape=stated[0], layers=layers,
                   node=stated[2])


def _sums(signatures: list[Signature]) -> list[int]:
    return [sum(sig[k] for sig in signatures) for k in _SUMMED]


def _readers(region: list[Item], name: str) -> list[Item]:
    return [i for i in region if name in i.inputs]


def _scale(region: list[Item], item: Item) -> Optional[tuple[Item, Item]]:
    """(the gamma, the layer scale) where ``item`` is a product of a tensor and a learned vector of
    its last axis's size that nothing else reads."""
    shapes = item.in_shape if isinstance(item.in_shape, list) else []  # a binary item takes its inputs' shapes
    if item.kind != "binary" or settings(item).op != "mul" or len(item.inputs) != 2 or len(shapes) != 2:
        return None
    for k, name in enumerate(item.inputs):
        gamma = next((i for i in region if i.name == name and i.kind == "param"), None)
        x_shape = shapes[1 - k]
        if gamma is None or _readers(region, name) != [item] or not x_shape or x_shape != item.out_shape:
            continue
        fields = settings(gamma)
        if not fields.trainable or fields.batch_axis is not None or fields.shape != [x_shape[-1]]:
            continue
        scale = _stated(item, {"kind": "layer_scale", "layout": "channels_last"}, x_shape, [item.inputs[1 - k]],
                        gamma.state)
        before = [layer.signature for layer in gamma.layers + item.layers]
        if scale is not None and scale.out_shape == item.out_shape and \
                _sums(before) == _sums([layer.signature for layer in scale.layers]):
            return gamma, scale
    return None


def _scales(region: list[Item]) -> list[Item]:
    """The region with each learned vector times a tensor as a ``layer_scale``."""
    for item in list(region):
        found = _scale(region, item)
        if found is not None:
            gamma, scale = found
            region = [scale if i is item else i for i in region if i is not gamma]
    return region


def _views_after(region: list[Item], piece: Item) -> tuple[list[Item], Optional[Item]]:
    """The views that follow ``piece`` one after another, each read by the next alone, and the item
    that reads the last of them (or ``piece``)."""
    views, last = [], piece
    while len(readers := _readers(region, last.name)) == 1 and readers[0].kind in _VIEWS \
            and readers[0].inputs == [last.name]:
        last = readers[0]
        views.append(last)
    readers = _readers(region, last.name)
    return views, readers[0] if len(readers) == 1 else None


def _lifted(view: Item, pieces: int) -> dict:
    """A view of one piece as the same view of the whole, the pieces along a new first axis."""
    fields = settings(view)
    if view.kind == "reshape":
        return {"kind": "reshape", "shape": [pieces, *fields.shape]}
    return {"kind": "permute", "dims": [0, *(d % len(view.in_shape) + 1 for d in fields.dims)]}


def _unbound(region: list[Item], whole: Item) -> Optional[list[Item]]:
    """The region with ``whole``'s pieces, selected index by index along its first axis, unbound
    after their views instead; None where they are not that."""
    selects = _readers(region, whole.name)
    rank, count = len(whole.out_shape), whole.out_shape[0] if whole.out_shape else 0
    if count < 2 or any(s.kind != "select" or settings(s).dim % rank for s in selects) or \
            sorted(settings(s).index % count for s in selects) != list(range(count)):
        return None
    selects.sort(key=lambda s: settings(s).index % count)
    chains = [_views_after(region, s) for s in selects]
    views, reader = chains[0]
    ends = [(c[0][-1] if c[0] else s).name for s, c in zip(selects, chains)]
    if reader is None or reader.inputs != ends or \
            any([v.fields for v in c[0]] != [v.fields for v in views] or c[1] is not reader for c in chains):
        return None
    made, inputs, shape = [], [whole.name], whole.out_shape
    for view in views:
        lifted = _stated(view, _lifted(view, count), shape, inputs, [])
        if lifted is None:
            return None
        made.append(lifted)
        inputs, shape = [lifted.name], lifted.out_shape
    unbind = _stated(selects[0], {"kind": "unbind", "dim": 0}, shape, inputs, [])
    if unbind is None or any(shape[1:] != i.out_shape for i in region if i.name in ends):
        return None
    gone = {id(i) for s, c in zip(selects, chains) for i in (s, *c[0])}
    at = region.index(selects[0])
    kept = [i for i in region[:at] if id(i) not in gone] + made + [replace(unbind, parts=tuple(ends))]
    return kept + [i for i in region[at:] if id(i) not in gone]


def _pieces_unbound(region: list[Item]) -> list[Item]:
    for whole in list(region):
        rewritten = _unbound(region, whole)
        region = rewritten if rewritten is not None else region
    return region


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
    return _pieces_unbound(_scales(out)) if out else None
