"""Wiring a spec's blocks: names (unique across blocks, stages and outputs), each block's inputs
(named in ``from:``, else the previous inference block's output; a source takes none), and the
execution order.

A block's inputs are tensors: a block's output, a stage's (its last block's), or one output of a
block with several outputs (``split``, ``unbind``), named ``<block>.<n>``. An exact block name
wins; ``name.N`` names output N of a several-output block ``name`` (a block or stage of that name
beside it is refused by the unique-name check). A source block (``param``) takes no input.
"""

from __future__ import annotations

import heapq
import re
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING

from scalelab.errors import did_you_mean
from scalelab.spec.load import located_error, yaml_path
from scalelab.spec.model import Spec

if TYPE_CHECKING:  # pragma: no cover
    from scalelab.graph.network import ResolvedBlock

INPUT = "input"
#: ``block.N``: output N of a block with several outputs (no leading zeros: one name per output)
OUTPUT_NAME = re.compile(r"(.+)\.(0|[1-9][0-9]*)")


def stage_ends(blocks) -> dict[str, str]:
    """Stage name -> its last block: where a block is expected, a stage means its output."""
    return {b.stage: b.name for b in blocks if b.stage is not None}


def _named(blocks: list[ResolvedBlock]):
    """(name, path of the node that gives it, 'block' or 'stage', a note) for every stage and block,
    in spec order."""
    for b in blocks:
        if b.stage is not None:
            if b.name == f"{b.stage}.0":
                yield b.stage, b.path + ("stage",), "stage", ""
            yield b.name, b.path, "block", f" (of stage '{b.stage}')"
        elif b.block.name is None:
            yield b.name, b.path, "block", " (its default: kind and count)"
        else:
            yield b.name, b.path + ("name",), "block", ""


def check_unique(spec: Spec, blocks: list[ResolvedBlock]) -> None:
    """One name, one thing: from: and ``explain -k`` never have to choose between a block and a stage."""
    first: dict[str, str] = {INPUT: "it names the network's input"}
    for name, path, what, note in _named(blocks):
        if name in first:
            raise located_error(spec.source, path, f"{what} name '{name}'{note} is used twice: {first[name]}; "
                                f"names are unique across blocks and stages")
        first[name] = f"the {what} at {yaml_path(path[:2])} has it too"
    several = {b.name: b for b in blocks if type(b.block).several_outputs}
    for name, path, what, note in _named(blocks) if several else ():
        match = OUTPUT_NAME.fullmatch(name)
        owner = several.get(match[1]) if match else None
        if match and owner is not None:
            raise located_error(spec.source, path, f"{what} name '{name}'{note} also names output {match[2]} of the "
                                f"'{owner.kind}' block '{owner.name}' at {yaml_path(owner.path[:2])}; names are "
                                f"unique across blocks, stages and outputs: rename one of them")


def wire(spec: Spec, blocks: list[ResolvedBlock]) -> None:
    """Give every block its inputs: the tensors named in from:, else the previous inference block's
    output (a source takes none), and the block that gives each one."""
    names = {INPUT}
    previous = INPUT
    for i, b in enumerate(blocks, start=1):
        names.add(b.name)
        b.index = i
        if type(b.block).arity == 0:
            if b.inputs:
                raise located_error(spec.source, b.path + ("from",), f"a '{b.kind}' block takes no input (it is a "
                                    f"source, the same tensor for every sample); leave 'from' out")
        elif not b.inputs:
            b.inputs = [previous]
        if not b.training_only:
            previous = b.name
    ends = stage_ends(blocks)
    several = {b.name: b for b in blocks if type(b.block).several_outputs}
    training_only = {b.name for b in blocks if b.training_only}
    for b in blocks:
        b.inputs = [src if src in names else ends.get(src, src) for src in b.inputs]  # a stage: its last block
        b.sources = [_source_of(spec, b, src, names, ends, several) for src in b.inputs]
        for src in b.sources:
            if src in training_only and not b.training_only:
                raise located_error(spec.source, b.path + ("from",),
                                    f"block '{b.name}' takes input from training-only block '{src}', whose cost the "
                                    f"inference total leaves out; mark '{b.name}' training_only too, or feed it "
                                    f"from inference blocks")
        arity = type(b.block).arity
        if arity is None and len(b.inputs) < 2:
            raise located_error(spec.source, b.path, f"a '{b.kind}' block joins two or more inputs; name them with from:")
        if arity == 1 and len(b.inputs) != 1:
            raise located_error(spec.source, b.path + ("from",),
                                f"a '{b.kind}' block takes one input, got {len(b.inputs)}; join them with add or concat first")


def _source_of(spec: Spec, b: ResolvedBlock, src: str, names: set[str], ends: dict[str, str],
               several: dict[str, ResolvedBlock]) -> str:
    """The block that gives tensor ``src`` to ``b``: ``src`` itself, or ``name`` for ``name.N``, output N
    of a block with several outputs; an error for an unknown name or a several-output block named whole."""
    where = b.path + ("from",) if b.block.inputs else b.path
    if src in several:
        owner = several[src]
        said = "takes input from" if b.block.inputs else "would take the output of the previous block,"
        raise located_error(spec.source, where, f"block '{b.name}' {said} '{src}', a '{owner.kind}' block with several "
                            f"outputs; name one of them with from: {src}.0, {src}.1, ...")
    if src in names:
        return src
    match = OUTPUT_NAME.fullmatch(src)
    if match and match[1] in several:
        return match[1]
    if match and match[1] in names:
        hint = f" ('{match[1]}' has one output: name it '{match[1]}')"
    else:
        hint = did_you_mean(src, [*names, *ends])
    raise located_error(spec.source, where, f"block '{b.name}' takes input from unknown block or stage '{src}'{hint}")


def order(spec: Spec, blocks: list[ResolvedBlock]) -> list[ResolvedBlock]:
    """Topological order, ties broken by spec order (a lexicographical topological sort)."""
    by_name = {b.name: b for b in blocks}
    sorter = TopologicalSorter({b.name: b.sources for b in blocks})
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = exc.args[1][:-1]  # each node feeds the next; the list closes on its first node
        start = min(range(len(cycle)), key=lambda i: by_name[cycle[i]].index)
        cycle = cycle[start:] + cycle[:start]
        raise located_error(spec.source, by_name[cycle[0]].path,
                            "from: makes a cycle: " + " -> ".join(cycle + [cycle[0]])) from None
    index = {INPUT: 0, **{b.name: b.index for b in blocks}}
    ready = [(index[n], n) for n in sorter.get_ready()]
    heapq.heapify(ready)
    order = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        sorter.done(name)
        for n in sorter.get_ready():
            heapq.heappush(ready, (index[n], n))
    return [by_name[n] for n in order if n != INPUT]
