"""Candidates for the token kinds (ViT, Dosovitskiy et al. 2021; DeiT, Touvron et al. 2021): an
encoder block's module (norm, attention, residual, norm, MLP, residual) as a ``transformer``, with
its settings read off the region's layers; then, around the run of encoder blocks, the operators
before the first as a ``patch_embed`` and those after the last as a ``token_pool``. The regions are
read as the kinds state them (``token_forms``); exactness decides, as for every other block."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from scalelab.blocks.layers import Shape
from scalelab.importer.fold.common import first_exact, settings, single
from scalelab.importer.fold.items import Item
from scalelab.importer.fold.regions import boundary
from scalelab.importer.fold.token_forms import token_region

#: the folded kinds a run of encoder blocks is made of
ENCODERS = ("transformer",)
#: the most operators a token pool (layer norm, slice, mean or select, dropouts) takes
POOL_ITEMS = 5


def _mlp_width(dim: int, hidden: int) -> dict:
    ratio = hidden / dim
    return {"mlp_ratio": ratio} if int(dim * ratio) == hidden else {"mlp_hidden": hidden}


def _activation(region: list[Item], first: Item) -> "str | None":
    """The MLP's activation: folded into its first linear, or the operator after it."""
    folded = first.fields.get("activation", "none")
    if folded != "none":
        return folded
    after = region[region.index(first) + 1]
    return after.fields.get("function") if after.kind == "activation" else None


def _with_folded(folded: Optional[Item], region: list[Item]) -> Optional[Item]:
    """The folded item, its members the region as imported (its output is the last one's)."""
    return None if folded is None else replace(folded, members=list(region))


def _layer_scale(region: list[Item]) -> "dict | None":
    """The transformer's layer_scale field: none, or the value of the scale on each branch."""
    scales = [settings(i).init for i in region if i.kind == "layer_scale"]
    if not scales:
        return {}
    return {"layer_scale": scales[0]} if len(scales) == 2 and len(set(scales)) == 1 else None


def transformer(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    reduced = token_region(region) if any(i.kind == "attention" for i in region) else None
    if reduced is None or len(shape) < 2:
        return None
    kinds = [i.kind for i in reduced]
    linears = [i for i in reduced if i.kind == "linear"]
    norms = [settings(i) for i in reduced if i.kind == "layer_norm"]
    scale = _layer_scale(reduced)
    if kinds.count("attention") != 1 or kinds.count("add") != 2 or len(linears) != 4 or len(norms) != 2 or \
            scale is None:
        return None
    heads_shape = reduced[kinds.index("attention")].in_shape[0]  # q: (*lead, heads, tokens, head_dim)
    activation = _activation(reduced, linears[2])
    if activation is None or not isinstance(heads_shape, tuple):
        return None
    fields = {"kind": "transformer", "head_dim": heads_shape[-1], "qkv_bias": settings(linears[0]).bias,
              "norm_eps": norms[0].norm_eps, "activation": activation, **scale,
              **_mlp_width(shape[-1], settings(linears[2]).out)}
    # q, k and v cut by views (timm) or after a copy of the whole projection (nn.MultiheadAttention)
    qkv = ("packed_copy", "views") if "contiguous" in kinds[:kinds.index("attention")] else ("views",)
    candidates = [{**fields, "norm_position": position, "qkv": form} for form in qkv for position in ("pre", "post")]
    return _with_folded(first_exact(candidates, reduced, shape, name, inputs), region)


def _patch_embed(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    reduced = token_region(region)
    convs = [settings(i) for i in reduced or [] if i.kind == "conv"]
    if reduced is None or len(convs) != 1 or convs[0].out is None:
        return None
    conv = convs[0]
    fields = {"kind": "patch_embed", "out": conv.out, "patch": single(conv.kernel)}
    # the position embedding on every token (ViT, DeiT) or on the patches before the tokens (DeiT III)
    positions = [{"position": "learned"}, {"position": "learned", "position_on": "patches"}, {"position": "none"}]
    candidates = [{**fields, "class_token": c, "distill_token": d, **p}
                  for c in (True, False) for d in (False, True) for p in positions if c or not d]
    return _with_folded(first_exact(candidates, reduced, shape, name, inputs), region)


def _token_pool(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    reduced = token_region(region)
    if reduced is None or len(shape) < 2 or any(i.state for i in reduced if i.kind != "layer_norm"):
        return None
    norms = [settings(i) for i in reduced if i.kind == "layer_norm"]
    eps = {"norm_eps": norms[0].norm_eps} if norms else {}
    skips = {"class": (0,), "mean": (0, 1, 2)}  # a mean leaves out the class and distillation tokens
    candidates = [{"kind": "token_pool", "mode": mode, "skip": skip, "norm": norm, **eps}
                  for mode in ("class", "mean") for skip in skips[mode]
                  for norm in (("before", "after") if norms else ("none",))]
    return _with_folded(first_exact(candidates, reduced, shape, name, inputs), region)


def _fold_run(items: list[Item], start: int, end: int, shapes: dict[str, Shape], want: str, folder) -> bool:
    """Fold ``items[start:end]`` with ``folder`` into a block named ``want`` (or its first item's
    name, where ``want`` is taken); whether it folded."""
    source = boundary(items, start, end)
    shape = shapes.get(source) if source is not None else None
    if source is None or shape is None:
        return False
    region = items[start:end]
    taken = {i.name for i in items} - {i.name for i in region}
    name = want if want not in taken else region[0].name
    folded = folder(region, shape, name, [source])
    if folded is None:
        return False
    old = region[-1].name
    for item in items[end:]:
        item.inputs = [name if t == old else t for t in item.inputs]
    shapes[name] = folded.out_shape
    items[start:end] = [folded]
    return True


def token_ends(items: list[Item], shapes: dict[str, Shape]) -> list[Item]:
    """Around the encoder blocks: the widest run before the first that states a patch embedding,
    then the widest run after the last (a few operators) that states a token pool."""
    encoders = [k for k, i in enumerate(items) if i.folded and i.kind in ENCODERS]
    if not encoders:
        return items
    first = encoders[0]
    for start in range(first - 1):
        if not any(i.training_only for i in items[start:first]) and \
                _fold_run(items, start, first, shapes, "patch_embed", _patch_embed):
            break
    last = max(k for k, i in enumerate(items) if i.folded and i.kind in ENCODERS)
    for end in range(min(len(items), last + 1 + POOL_ITEMS), last + 1, -1):
        if not any(i.training_only for i in items[last + 1:end]) and \
                _fold_run(items, last + 1, end, shapes, "pool", _token_pool):
            break
    return items
