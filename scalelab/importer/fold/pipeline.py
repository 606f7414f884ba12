"""Folding an imported spec: the flat blocks become the zoo's block kinds where a kind states a
region exactly, then runs of like blocks become stages. Every figure stays as it was: a block
replaces a region only when it states the region's layers one for one."""

from __future__ import annotations

from scalelab.analysis import analyze
from scalelab.errors import ScalelabError
from scalelab.graph import INPUT, resolve
from scalelab.importer.fold.inverted import fused_mbconv, mbconv
from scalelab.importer.fold.items import Item, flat_items, tensor_shapes
from scalelab.importer.fold.nesting import nest
from scalelab.importer.fold.regions import fold_regions
from scalelab.importer.fold.residual import bottleneck, group_widths, residual
from scalelab.importer.fold.stages import Stage, stages
from scalelab.importer.fold.swin import alternate_shifts, patch_merging, swin_block
from scalelab.importer.fold.tokens import token_ends, transformer
from scalelab.spec import Spec

#: tried in order on every region, the widest first (a block takes its whole module, shortcut
#: included, before a part of it could fold alone); the first that states a region exactly folds it
BLOCKS = [residual, bottleneck, mbconv, fused_mbconv, transformer, swin_block, patch_merging]
#: then what is left, the deepest first, as its data flow nests (wrap, inception), so that a region
#: wider than one block (a stage) is not taken whole


def _block(item: Item, previous: str) -> dict:
    block: dict = {"name": item.name}
    if item.inputs and (item.training_only or item.inputs != [previous]):  # a source (a param) reads nothing
        block["from"] = item.inputs[0] if len(item.inputs) == 1 else item.inputs
    block.update(item.fields)
    if item.training_only:
        block["training_only"] = True
    return block


def _written(entries: list, shapes: dict[str, tuple]) -> tuple[list[dict], dict, list]:
    """The blocks, the module's shape of each named block, and each block's source state."""
    blocks, out_shapes, held, previous = [], {}, [], INPUT
    for entry in entries:
        if isinstance(entry, Stage):
            blocks.append(entry.line())
            for name, item in zip(entry.names(), entry.items):
                held.append(([name], item.state))
                if item.source_name in shapes:
                    out_shapes[name] = shapes[item.source_name]
            previous = entry.names()[-1]
            continue
        blocks.append(_block(entry, previous))
        held.append(([entry.name], entry.state))
        if entry.source_name in shapes:
            out_shapes[entry.name] = shapes[entry.source_name]
        previous = entry.name
    return blocks, out_shapes, held


def fold_spec(spec: Spec, blocks: list[dict], shapes: dict[str, tuple], held: list) -> tuple[list[dict], dict, list]:
    """The folded blocks of a flat imported ``spec`` (written as ``blocks``), the module's output
    shape of each block, and the source state each holds (as ``spec_blocks`` gives them)."""
    network = resolve(spec)
    if any(b["name"] not in network.blocks for b in blocks):
        return blocks, shapes, held  # a training-only head left out at this input: kept as imported
    try:
        items = flat_items(network, blocks, held)
    except (NotImplementedError, TypeError, ValueError, RuntimeError):  # a layer builds no module to say its state
        return blocks, shapes, held
    shapes_of = tensor_shapes(network)
    items = fold_regions(items, BLOCKS, shapes_of, deepest=False)
    items = token_ends(items, shapes_of)  # a patch embedding and a token pool around encoder blocks
    items = fold_regions(items, [nest], shapes_of, deepest=True)
    group_widths(items)
    return _written(stages(alternate_shifts(items)), shapes)


def _figures(spec: Spec) -> tuple:
    result = analyze(spec)
    return tuple((t.params, t.macs, t.ops, t.weight_ops) for t in (result.total, result.training_only_total))


def same_figures(flat: Spec, folded: Spec, ref: str) -> Spec:
    """``folded``, once its totals (parameters, MACs, other ops, weight ops; the training-only blocks'
    apart) are the flat spec's: folding restates blocks, it never changes a figure."""
    if _figures(flat) != _figures(folded):
        raise ScalelabError(f"{ref}: folding changed the spec's totals; --no-fold imports it flat; "
                            f"please report this module")
    return folded
