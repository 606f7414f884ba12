"""Spec -> networkx DAG of resolved blocks, with shapes propagated through it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import networkx as nx

from scalelab.blocks import Block
from scalelab.blocks.layers import LayerCost, Node, Shape, ShapeError, elements, fmt_shape, walk
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.limits import MAX_CHANNELS, MAX_ELEMENTS, MAX_RESOLUTION
from scalelab.spec.load import located_error
from scalelab.spec.model import Spec, Stage

INPUT = "input"


@dataclass
class ResolvedBlock:
    """One block of the network: its parameters, place in the spec, and derived shapes and costs."""

    name: str
    block: Block
    path: tuple  # where the block is written in the spec
    inputs: list[str]
    stage: Optional[str] = None
    in_shape: "Shape | list[Shape]" = ()
    out_shape: Shape = ()
    layers: Optional[Node] = None
    costs: list[LayerCost] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.block.kind

    @property
    def training_only(self) -> bool:
        return self.block.training_only


@dataclass
class Network:
    spec: Spec
    input_shape: Shape
    graph: nx.DiGraph
    blocks: dict[str, ResolvedBlock]  # in execution order
    output: str  # the block whose output is the network's
    #: training-only blocks left out because they cannot take their input at this resolution: name -> why
    not_applicable: dict[str, str] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        """What a report must say about the network beyond its rows."""
        size = "x".join(str(d) for d in self.input_shape[1:])
        return [f"Training-only block '{name}' is not applicable at {size} and is left out: {why}."
                for name, why in self.not_applicable.items()]

    def inference_blocks(self) -> list[ResolvedBlock]:
        return [b for b in self.blocks.values() if not b.training_only]


def _with_stride(block: Block, stride: int) -> Block:
    if "stride" not in type(block).model_fields:
        return block
    data = block.model_dump(by_alias=True, exclude_unset=True)
    return type(block).model_validate({**data, "stride": stride})


def _expand(spec: Spec) -> list[ResolvedBlock]:
    """Entries -> blocks: stages unroll into stage.0, stage.1, ... (the first takes the stride)."""
    blocks: list[ResolvedBlock] = []
    counts: dict[str, int] = {}
    for i, entry in enumerate(spec.blocks):
        if isinstance(entry, Stage):
            if entry.block.inputs:
                raise located_error(spec.source, ("blocks", i, "block", "from"),
                                    "a stage's block cannot name its inputs; give the stage's first block 'from' in a block of its own")
            for r in range(entry.repeat):
                block = entry.block
                if r > 0:
                    block = _with_stride(block, 1)
                elif entry.stride is not None:
                    block = _with_stride(block, entry.stride)
                blocks.append(ResolvedBlock(f"{entry.stage}.{r}", block, ("blocks", i), [], entry.stage))
        else:
            counts[entry.kind] = counts.get(entry.kind, 0) + 1
            name = entry.name or f"{entry.kind}{counts[entry.kind]}"
            blocks.append(ResolvedBlock(name, entry, ("blocks", i), list(entry.inputs or [])))
    return blocks


def _wire(spec: Spec, blocks: list[ResolvedBlock]) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_node(INPUT)
    previous = INPUT
    for b in blocks:
        if b.name in graph:
            raise located_error(spec.source, b.path, f"block name '{b.name}' is used twice")
        graph.add_node(b.name, index=len(graph))
        if not b.inputs:
            b.inputs = [previous]
        if not b.training_only:
            previous = b.name
    names = set(graph.nodes)
    training_only = {b.name for b in blocks if b.training_only}
    for b in blocks:
        for src in b.inputs:
            if src not in names:
                raise located_error(spec.source, b.path + ("from",),
                                    f"block '{b.name}' takes input from unknown block '{src}'{did_you_mean(src, names)}")
            if src in training_only and not b.training_only:
                raise located_error(spec.source, b.path + ("from",),
                                    f"block '{b.name}' takes input from training-only block '{src}', whose cost the "
                                    f"inference total leaves out; mark '{b.name}' training_only too, or feed it "
                                    f"from inference blocks")
            graph.add_edge(src, b.name)
        arity = type(b.block).arity
        if arity is None and len(b.inputs) < 2:
            raise located_error(spec.source, b.path, f"a '{b.kind}' block joins two or more inputs; name them with from:")
        if arity == 1 and len(b.inputs) != 1:
            raise located_error(spec.source, b.path + ("from",),
                                f"a '{b.kind}' block takes one input, got {len(b.inputs)}; join them with add or concat first")
    return graph


def _order(spec: Spec, graph: nx.DiGraph, blocks: list[ResolvedBlock]) -> list[ResolvedBlock]:
    by_name = {b.name: b for b in blocks}
    try:
        names = list(nx.lexicographical_topological_sort(graph, key=lambda n: graph.nodes[n].get("index", 0)))
    except nx.NetworkXUnfeasible:
        cycle = [u for u, _ in nx.find_cycle(graph)]
        raise located_error(spec.source, by_name[cycle[0]].path,
                            "from: makes a cycle: " + " -> ".join(cycle + [cycle[0]])) from None
    return [by_name[n] for n in names if n != INPUT]


def _widest(node: object) -> int:
    """The most channels any layer of a layer tree has (widths derived from ratios included)."""
    widest, todo = 0, [node]
    while todo:
        item = todo.pop()
        if isinstance(item, (list, tuple)):
            todo.extend(item)
        elif dataclasses.is_dataclass(item):
            for name in item.__dataclass_fields__:
                value = getattr(item, name)
                if name in ("in_ch", "out_ch", "channels") and isinstance(value, int):
                    widest = max(widest, value)
                elif not isinstance(value, (int, float, str, bool)):
                    todo.append(value)
    return widest


def _check_size(spec: Spec, b: ResolvedBlock) -> None:
    """A feature map or a block's weights beyond any real tensor is a mistake, not a network to cost."""
    params = biggest = 0
    for c in b.costs:
        params += c.params
        biggest = max(biggest, c.out_elems)
    # a layer's output has at least as many elements as channels: most blocks need no walk
    widest = _widest(b.layers) if biggest > MAX_CHANNELS else 0
    if widest > MAX_CHANNELS:
        raise located_error(spec.source, b.path, f"block '{b.name}' ({b.kind}) has a layer of {widest:,} channels, "
                            f"more than the {MAX_CHANNELS:,} a layer may have (README, 'Bounds')")
    count = elements(b.out_shape)
    if count > MAX_ELEMENTS:
        raise located_error(spec.source, b.path, f"block '{b.name}' ({b.kind}) outputs {fmt_shape(b.out_shape)} = "
                            f"{count:,} elements, more than the 2^40 a tensor of one sample may have (README, 'Bounds')")
    if params > MAX_ELEMENTS:
        raise located_error(spec.source, b.path, f"block '{b.name}' ({b.kind}) holds {params:,} parameters, more than "
                            f"the 2^40 a tensor of one sample may have (README, 'Bounds')")


def _whole_heads(graph: nx.DiGraph, ordered: list[ResolvedBlock], skipped: dict[str, str]) -> dict[str, str]:
    """A head is left out whole: every training-only block connected to one that does not fit."""
    heads = graph.subgraph(b.name for b in ordered if b.training_only)
    for head in nx.weakly_connected_components(heads):
        failed = next((b.name for b in ordered if b.name in head and b.name in skipped), None)
        for name in head if failed else ():
            skipped.setdefault(name, f"it belongs to the head whose block '{failed}' does not fit")
    return {b.name: skipped[b.name] for b in ordered if b.name in skipped}


def resolve(spec: Spec, resolution: "int | tuple[int, int] | None" = None) -> Network:
    """Build the block graph and propagate shapes; raise ScalelabError at the first impossible shape.

    A training-only block (an auxiliary head) that cannot take its input at this resolution is left
    out and named in ``not_applicable``: the inference network does not depend on it."""
    if resolution is None:
        resolution = spec.input.resolution
    elif isinstance(resolution, int):
        resolution = (resolution, resolution)
    if min(resolution) < 1 or max(resolution) > MAX_RESOLUTION:
        raise ScalelabError(f"resolution must be between 1 and {MAX_RESOLUTION:,} pixels, got {resolution}")
    input_shape: Shape = (spec.input.channels, *resolution)
    if elements(input_shape) > MAX_ELEMENTS:
        raise located_error(spec.source, ("input",), f"an input of {fmt_shape(input_shape)} has more than the 2^40 "
                            f"elements a tensor of one sample may have (README, 'Bounds')")
    blocks = _expand(spec)
    graph = _wire(spec, blocks)
    ordered = _order(spec, graph, blocks)
    shapes: dict[str, Shape] = {INPUT: input_shape}
    skipped: dict[str, str] = {}
    for b in ordered:
        missing = next((s for s in b.inputs if s in skipped), None) if skipped else None
        if missing is not None:  # only training-only blocks take input from training-only ones
            skipped[b.name] = f"its input '{missing}' is not applicable"
            continue
        ins = [shapes[s] for s in b.inputs]
        b.in_shape = ins[0] if type(b.block).arity == 1 else ins
        try:
            b.layers = b.block.layers(b.in_shape)
            result = walk(b.layers, b.in_shape)
        except ShapeError as exc:
            got = " and ".join(fmt_shape(s) for s in ins)
            if b.training_only:
                skipped[b.name] = f"it cannot take input {got}: {exc}"
                continue
            raise located_error(spec.source, b.path,
                                f"block '{b.name}' ({b.kind}) cannot take input {got}: {exc}") from None
        b.out_shape, b.costs = result.out, result.costs
        _check_size(spec, b)
        shapes[b.name] = b.out_shape
        graph.nodes[b.name]["block"] = b
    inference = [b for b in ordered if not b.training_only]
    if not inference:
        raise located_error(spec.source, ("blocks",), "every block is training-only; nothing computes the output")
    if skipped:
        skipped = _whole_heads(graph, ordered, skipped)
        graph.remove_nodes_from(skipped)
    kept = {b.name: b for b in ordered if b.name not in skipped}
    return Network(spec, input_shape, graph, kept, inference[-1].name, skipped)
