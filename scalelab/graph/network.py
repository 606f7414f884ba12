"""Spec -> networkx DAG of resolved blocks, with shapes propagated through it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import networkx as nx

from scalelab.blocks import Block
from scalelab.blocks.layers import LayerCost, Node, Shape, ShapeError, fmt_shape, walk
from scalelab.errors import ScalelabError, did_you_mean
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


def _ramp_drop_path(spec: Spec, blocks: list[ResolvedBlock]) -> None:
    """Give each stage block with a ``drop_path`` its rate on the spec's stochastic-depth ramp."""
    ramp = spec.stochastic_depth
    if ramp is None:
        return
    targets = [b for b in blocks if b.stage is not None and "drop_path" in type(b.block).model_fields]
    steps = max(1, len(targets) - 1) if ramp.end == "last" else len(targets)
    for i, b in enumerate(targets):
        if "drop_path" in b.block.model_fields_set:
            raise located_error(spec.source, b.path + ("block", "drop_path"),
                                "drop_path is set by the spec's stochastic_depth ramp; leave it out here")
        data = b.block.model_dump(by_alias=True, exclude_unset=True)
        b.block = type(b.block).model_validate({**data, "drop_path": ramp.rate * i / steps})


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
    for b in blocks:
        for src in b.inputs:
            if src not in names:
                raise located_error(spec.source, b.path + ("from",),
                                    f"block '{b.name}' takes input from unknown block '{src}'{did_you_mean(src, names)}")
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


def resolve(spec: Spec, resolution: "int | tuple[int, int] | None" = None) -> Network:
    """Build the block graph and propagate shapes; raise ScalelabError at the first impossible shape."""
    if resolution is None:
        resolution = spec.input.resolution
    elif isinstance(resolution, int):
        resolution = (resolution, resolution)
    if min(resolution) < 1:
        raise ScalelabError(f"resolution must be positive, got {resolution}")
    input_shape: Shape = (spec.input.channels, *resolution)
    blocks = _expand(spec)
    _ramp_drop_path(spec, blocks)
    graph = _wire(spec, blocks)
    ordered = _order(spec, graph, blocks)
    shapes: dict[str, Shape] = {INPUT: input_shape}
    for b in ordered:
        ins = [shapes[s] for s in b.inputs]
        b.in_shape = ins[0] if type(b.block).arity == 1 else ins
        try:
            b.layers = b.block.layers(b.in_shape)
            result = walk(b.layers, b.in_shape)
        except ShapeError as exc:
            got = " and ".join(fmt_shape(s) for s in ins)
            raise located_error(spec.source, b.path,
                                f"block '{b.name}' ({b.kind}) cannot take input {got}: {exc}") from None
        b.out_shape, b.costs = result.out, result.costs
        shapes[b.name] = b.out_shape
        graph.nodes[b.name]["block"] = b
    inference = [b for b in ordered if not b.training_only]
    if not inference:
        raise located_error(spec.source, ("blocks",), "every block is training-only; nothing computes the output")
    return Network(spec, input_shape, graph, {b.name: b for b in ordered}, inference[-1].name)
