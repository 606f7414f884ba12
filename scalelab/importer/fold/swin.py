"""Candidates for Swin's kinds (Liu et al. 2021) as torchvision and timm build them: a block's module
(``SwinTransformerBlock``: norm, shifted-window attention, residual, norm, MLP, residual) as a
``swin_block`` of either form, a ``PatchMerging`` as a ``patch_merging``, and runs of blocks whose
shifts alternate 0, window // 2, ... as the ``shift: alternate`` a stage repeats.

The import states two parts of them as operators where the kinds state one layer each; each is read
the kind's way first, only where its operators are that layer's statements one for one (shapes,
axes, scale, position bias, mask) and their figures sum to the layer's:

* the window attention between the qkv and output projections (reshape to q, k, v by heads,
  selects or an unbind, the scaling of q, k transposed, the two products, the position bias, the
  mask when shifted, the softmax, the heads put back beside each other) is ``window_attention``,
  holding the bias table and the index buffer beside it, as torchvision's module does (timm's
  keeps its mask as a buffer, the imported mask ``cached``, and its index out of the state dict);
* the pad, the eight strided slices and the concatenation of 2x2 neighbours (torchvision), or the
  pad, the view into 2x2 neighbours, the permute that puts them beside the channels and its copy
  (timm, the same order), are ``patch_concat``.

Exactness then decides, as for every other block."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional, TypeGuard

from scalelab.blocks import KINDS
from scalelab.blocks.layers import PatchConcat, Shape, WindowAttention
from scalelab.importer.fold.common import first_exact, settings
from scalelab.importer.fold.exact import candidate_layers
from scalelab.importer.fold.items import Item, Layer, signature

TABLE, INDEX = "relative_position_bias_table", "relative_position_index"  # torchvision's names of the bias state
#: torchvision's 2x2 neighbours of patch merging, (row, column) offsets in concatenation order
NEIGHBOURS = [(0, 0), (1, 0), (0, 1), (1, 1)]


def _figures(items: list[Item]) -> tuple[int, int, int, int]:
    """Parameters, MACs, ops and weight ops of the items' layers, summed."""
    sigs = [layer.signature for item in items for layer in item.layers]
    params, macs, ops, weight_ops = (sum(s[k] for s in sigs) for k in (1, 2, 3, 6))
    return params, macs, ops, weight_ops


class _Graph:
    """The region's items by name, and who reads each tensor."""

    def __init__(self, region: list[Item]) -> None:
        self.items = {i.name: i for i in region}
        self.readers: dict[str, list[Item]] = {}
        for item in region:
            for t in item.inputs:
                self.readers.setdefault(t, []).append(item)

    def source(self, item: Item, k: int = 0) -> Optional[Item]:
        """The item that makes input ``k`` of ``item`` (a part's maker for ``unbind.1``)."""
        name = item.inputs[k] if k < len(item.inputs) else ""
        return self.items.get(name) or self.items.get(name.rpartition(".")[0])

    def reader(self, name: str, kind: str) -> Optional[Item]:
        """The one reader of ``name``, if it is of ``kind``."""
        readers = self.readers.get(name, [])
        return readers[0] if len(readers) == 1 and readers[0].kind == kind else None


def _is(item: Optional[Item], kind: str, test: Callable = lambda f: True) -> TypeGuard[Item]:
    return item is not None and item.kind == kind and bool(test(settings(item)))


def _qkv_pieces(graph: _Graph, reads: list[tuple[Item, int]]) -> Optional[list[Item]]:
    """The permute (3, windows, heads, N, d) whose pieces 0, 1, 2 the (reader, input) pairs of q, k
    and v read, with the selects or the unbind that cut them; None unless that is how they are cut."""
    makers = [graph.source(item, k) for item, k in reads]
    if all(_is(m, "select", lambda f, i=i: f.dim == 0 and f.index == i) for i, m in enumerate(makers)):
        cut: list[Item] = makers  # type: ignore[assignment]  # three selects
    elif makers[0] is not None and all(m is makers[0] for m in makers) and _is(makers[0], "unbind", lambda f: f.dim == 0):
        if [item.inputs[k].rpartition(".")[2] for item, k in reads] != ["0", "1", "2"]:
            return None
        cut = [makers[0]]
    else:
        return None
    permutes = {id(graph.source(m)): graph.source(m) for m in cut}
    permute = next(iter(permutes.values())) if len(permutes) == 1 else None
    if not _is(permute, "permute", lambda f: list(f.dims) == [2, 0, 3, 1, 4]):
        return None
    return [permute, *cut]


def _scores(graph: _Graph, bias: Item, form: str) -> "tuple[list[Item], Item, Item, Optional[Item]] | None":
    """From the position bias: (the matched items, q's scaling, k's transpose, the mask) of
    (q * s) @ k^T + B [+ M] through the softmax, the mask built each pass (torchvision) or a
    buffer (timm); None unless the region computes exactly that."""
    add = graph.reader(bias.name, "binary")
    if add is None or (settings(add).op, settings(add).alpha) != ("add", 1) or len(add.inputs) != 2:
        return None
    product = graph.source(add, add.inputs.index(bias.name) ^ 1)
    if not _is(product, "matmul") or len(product.inputs) != 2:
        return None
    scaled, transposed = graph.source(product, 0), graph.source(product, 1)
    if not _is(scaled, "unary", lambda f: f.op == "mul") or not _is(transposed, "permute", lambda f: list(f.dims) == [0, 1, 3, 2]):
        return None
    matched, last, mask = [bias, product, add], add, None
    masked = graph.reader(add.name, "binary")
    if masked is not None and (settings(masked).op, settings(masked).alpha) == ("add", 1) and len(masked.inputs) == 2:
        mask = graph.source(masked, masked.inputs.index(add.name) ^ 1)
        if not _is(mask, "window_mask", lambda f: f.fill == -100.0 and f.cached == (form == "timm")):
            return None
        matched, last = matched + [masked, mask], masked
    softmax = graph.reader(last.name, "softmax")
    if softmax is None or settings(softmax).dim not in (3, -1):
        return None
    return matched + [softmax], scaled, transposed, mask


def _heads_back(graph: _Graph, out: Item, shape: Shape) -> Optional[list[Item]]:
    """The transpose of the heads back beside each other, its copy (where it makes one) and the
    reshape to (windows, N, C) after ``out``."""
    transpose = graph.reader(out.name, "permute")
    if transpose is None or list(settings(transpose).dims) != [0, 2, 1, 3]:
        return None
    copy = graph.reader(transpose.name, "contiguous")
    reshape = graph.reader((copy or transpose).name, "reshape")
    if reshape is None or tuple(reshape.out_shape) != shape:
        return None
    return [transpose, *([copy] if copy else []), reshape]


def _window_attention(region: list[Item], grid: tuple[int, int], form: str) -> Optional[list[Item]]:
    """The region with its window attention as one ``window_attention`` item of ``form`` (named as
    the last of the operators it replaces), where they state it exactly; None otherwise."""
    graph = _Graph(region)
    biases = [i for i in region if i.kind == "position_bias"]
    if len(biases) != 1:
        return None
    bias, b = biases[0], settings(biases[0])
    window, heads = b.window[0], b.heads
    scores = _scores(graph, bias, form) if b.window[0] == b.window[1] and b.offsets == "signed" else None
    if scores is None:
        return None
    found, scaled, transposed, mask = scores
    shift = tuple(settings(mask).shift) if mask is not None else (0, 0)
    if mask is not None and (tuple(settings(mask).window) != (window, window) or tuple(settings(mask).grid) != grid):
        return None
    out = graph.reader(found[-1].name, "matmul")
    if out is None or graph.source(out, 0) is not found[-1]:
        return None
    pieces = _qkv_pieces(graph, [(scaled, 0), (transposed, 0), (out, 1)])
    if pieces is None:
        return None
    split = graph.source(pieces[0])
    n, windows = window * window, grid[0] * grid[1]
    c = pieces[0].out_shape[-1] * heads  # (3, windows, heads, N, d)
    if not _is(split, "reshape", lambda f: tuple(f.shape) == (windows, n, 3, heads, c // heads)):
        return None
    if settings(scaled).scalar != (c // heads) ** -0.5:
        return None
    back = _heads_back(graph, out, (windows, n, c))
    if back is None or split is None:
        return None
    core = [split, *pieces, scaled, transposed, *found, out, *back]
    return _restated(region, core, WindowAttention(heads, window, shift, grid, form=form), _state(bias, form))


def _state(bias: Item, form: str) -> Optional[list[str]]:
    """The bias table's source key and the index buffer's beside it, as torchvision names them
    (timm's index is no entry of its state dict)."""
    if len(bias.state) != 1 or not bias.state[0].endswith(TABLE):
        return None
    return [bias.state[0]] + ([bias.state[0][:-len(TABLE)] + INDEX] if form == "torchvision" else [])


def _restated(region: list[Item], core: list[Item], node, state: Optional[list[str]]) -> Optional[list[Item]]:
    """``region`` with the ``core`` items as one item of the layer ``node``: only where nothing
    outside the core reads inside it, the core reads one tensor from outside, and the layer's
    figures are the core's summed."""
    names, last = {i.name for i in core}, core[-1]
    inner = {t for i in core for t in i.tensors()} - {last.name}
    outside = {t for i in core for t in i.inputs if t not in inner}
    if state is None or len(names) != len(core) or len(outside) != 1 or any(
            t in inner for i in region if i.name not in names for t in i.inputs):
        return None
    source = outside.pop()
    in_shape = next((i.in_shape for i in core if i.inputs == [source]), None)
    if not isinstance(in_shape, tuple):
        return None
    try:
        cost = node.cost(in_shape, node.out_shape(in_shape))
    except ValueError:
        return None
    if (cost.params, cost.macs, cost.ops, cost.weight_ops) != _figures(core) or node.out_shape(in_shape) != last.out_shape:
        return None
    item = Item(last.name, {"kind": cost.label}, [source], in_shape, last.out_shape, [Layer(signature(cost), state)],
                node=node)
    at = max(k for k, i in enumerate(region) if i.name in names)
    return [item if k == at else i for k, i in enumerate(region) if k == at or i.name not in names]


def _patch_concat(region: list[Item], shape: Shape) -> Optional[list[Item]]:
    """The region with the pad, the strided slices and the concatenation of 2x2 neighbours as one
    ``patch_concat``, where they state it exactly; None otherwise."""
    graph = _Graph(region)
    cats = [i for i in region if i.kind == "cat" and len(i.inputs) == 4]
    if len(cats) != 1 or settings(cats[0]).dim not in (2, -1):
        return None
    h, w, _ = shape
    core, offsets, pad = [cats[0]], [], None
    for k in range(4):
        cols = graph.source(cats[0], k)
        rows = graph.source(cols) if cols is not None else None
        if not (_is(cols, "slice", lambda f: f.dim == 1 and f.step == 2 and f.stop is None)
                and _is(rows, "slice", lambda f: f.dim == 0 and f.step == 2 and f.stop is None)):
            return None
        offsets.append((settings(rows).start or 0, settings(cols).start or 0))
        pad = graph.source(rows)
        core += [rows, cols]
    if offsets != NEIGHBOURS or not _is(pad, "pad", lambda f: list(f.pad) == [0, 0, 0, w % 2, 0, h % 2]):
        return None
    return _restated(region, [pad, *core[::-1]], PatchConcat(), [])


def _with_folded(folded: Optional[Item], region: list[Item]) -> Optional[Item]:
    """The folded item, its members the region as imported (its output is the last one's)."""
    return None if folded is None else replace(folded, members=list(region))


def _activation(region: list[Item], fc1: Item) -> "str | None":
    """The MLP's activation: folded into its first linear, or the operator after it."""
    folded = fc1.fields.get("activation", "none")
    if folded != "none":
        return folded
    after = region[region.index(fc1) + 1:]
    return after[0].fields.get("function") if after and after[0].kind == "activation" else None


def swin_block(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    biases = [settings(i) for i in region if i.kind == "position_bias"]
    if len(shape) != 3 or len(biases) != 1 or shape[2] % biases[0].heads:
        return None
    window = biases[0].window[0]
    grid = (-(-shape[0] // window), -(-shape[1] // window))
    for form in ("torchvision", "timm"):
        reduced = _window_attention(region, grid, form)
        fields = None if reduced is None else _block_fields(reduced, shape, window, biases[0].heads)
        folded = None if fields is None else first_exact([{**fields, "form": form}], reduced, shape, name, inputs)  # type: ignore[arg-type]
        if folded is not None:
            return _with_folded(folded, region)
    return None


def _block_fields(reduced: list[Item], shape: Shape, window: int, heads: int) -> Optional[dict]:
    """The swin_block settings the reduced region's layers suggest; exactness then checks them."""
    c = shape[2]
    linears = [i for i in reduced if i.kind == "linear"]
    norms = [settings(i) for i in reduced if i.kind == "layer_norm"]
    rolls = [settings(i).shifts for i in reduced if i.kind == "roll"]
    if len(linears) != 4 or len(norms) != 2 or len(rolls) not in (0, 2):
        return None
    activation, hidden = _activation(reduced, linears[2]), settings(linears[2]).out
    if activation is None or int(c * (hidden / c)) != hidden:
        return None
    return {"kind": "swin_block", "window": window, "shift": max((abs(s) for s in rolls[0]), default=0) if rolls else 0,
            "head_dim": c // heads, "mlp_ratio": hidden / c, "qkv_bias": settings(linears[0]).bias,
            "norm_eps": norms[0].norm_eps, "activation": activation}


def _neighbours_by_views(region: list[Item], shape: Shape) -> Optional[list[Item]]:
    """The region with timm's gather of 2x2 neighbours (the pad, the view (H/2, 2, W/2, 2, C), the
    permute to (H/2, W/2, 2 columns, 2 rows, C), its copy and the view joining them to 4C channels:
    torchvision's concatenation order) as one ``patch_concat``, where they state it exactly."""
    graph = _Graph(region)
    h, w, c = shape
    half = (-(-h // 2), -(-w // 2))
    pads = [i for i in region if i.kind == "pad" and list(settings(i).pad) == [0, 0, 0, w % 2, 0, h % 2]]
    split = graph.reader(pads[0].name, "reshape") if len(pads) == 1 else None
    if split is None or tuple(settings(split).shape) != (half[0], 2, half[1], 2, c):
        return None
    permute = graph.reader(split.name, "permute")
    if permute is None or list(settings(permute).dims) != [0, 2, 3, 1, 4]:
        return None
    copy = graph.reader(permute.name, "contiguous")
    joined = graph.reader((copy or permute).name, "reshape")
    if joined is None or tuple(joined.out_shape) != (*half, 4 * c):
        return None
    return _restated(region, [pads[0], split, permute, *([copy] if copy else []), joined], PatchConcat(), [])


def patch_merging(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    if len(shape) != 3:
        return None
    cat = any(i.kind == "cat" for i in region)
    reduced = _patch_concat(region, shape) if cat else _neighbours_by_views(region, shape)
    norms = [settings(i) for i in reduced or [] if i.kind == "layer_norm"]
    if reduced is None or len(norms) != 1:
        return None
    fields = {"kind": "patch_merging", "norm_eps": norms[0].norm_eps}
    return _with_folded(first_exact([fields], reduced, shape, name, inputs), region)


def _states(item: Item, fields: dict) -> bool:
    """Whether ``fields`` state the folded item's layers one for one at its input."""
    stated = candidate_layers(fields, item.in_shape)  # type: ignore[arg-type]  # a block's one input
    return stated is not None and stated[0] == item.out_shape and [signature(c) for c in stated[1]] == [
        layer.signature for layer in item.layers]


def _alternates(run: list[Item]) -> bool:
    """Whether the run's blocks are a stage's repeats with ``shift: alternate``: each as its repeat."""
    base = {k: v for k, v in run[0].fields.items() if k != "shift"}
    block = KINDS["swin_block"].model_validate(base)
    return all(_states(item, {**base, "shift": getattr(block.repeated(r), "shift")}) for r, item in enumerate(run))


def alternate_shifts(items: list[Item]) -> list[Item]:
    """Runs of folded Swin blocks under one module, each reading the one before, alike but for
    shifts that alternate 0, window // 2, ... as a stage's repeats do: their shift is written as the
    kind's default, ``alternate``, so that they are one stage's block."""
    start = 0
    while start < len(items):
        end = start + 1
        if items[start].folded and items[start].kind == "swin_block":
            base = {k: v for k, v in items[start].fields.items() if k != "shift"}
            parent = items[start].name.rpartition(".")[0]
            while end < len(items) and items[end].folded and items[end].kind == "swin_block" and \
                    items[end].inputs == [items[end - 1].name] and items[end].name.rpartition(".")[0] == parent and \
                    {k: v for k, v in items[end].fields.items() if k != "shift"} == base:
                end += 1
            if end - start > 1 and _alternates(items[start:end]):
                for item in items[start:end]:
                    item.fields = base
        start = end
    return items
