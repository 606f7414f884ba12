"""Spec -> DAG of resolved blocks, with shapes propagated through it.

The execution order comes from the standard library's ``graphlib``; ``Network.graph``, the networkx
DiGraph of the blocks for graph algorithms, is built on first use. Importing networkx costs more
than a whole analysis (see benchmarks/analyze.md), so the analysis path does not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Optional

from scalelab.blocks import Block
from scalelab.blocks.layers import LayerCost, Node, Shape, ShapeError, fmt_shape, walk
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.spec.load import located_error
from scalelab.spec.model import Spec, Stage

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

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
    index: int = 0  #: place in the spec, after stages are unrolled (1 = first block)

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
    blocks: dict[str, ResolvedBlock]  # in execution order
    output: str  # the block whose output is the network's
    warnings: list[str] = field(default_factory=list)  #: likely mistakes that still make a network

    @cached_property
    def graph(self) -> "nx.DiGraph":
        """The blocks as a networkx DiGraph (node ``input`` and one node per block, with attributes
        ``index`` in spec order and ``block``; an edge per input)."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_node(INPUT)
        for b in sorted(self.blocks.values(), key=lambda b: b.index):
            graph.add_node(b.name, index=b.index, block=b)
        graph.add_edges_from((src, b.name) for b in self.blocks.values() for src in b.inputs)
        return graph

    def inference_blocks(self) -> list[ResolvedBlock]:
        return [b for b in self.blocks.values() if not b.training_only]

    def block_named(self, name: str, what: str) -> str:
        """The block ``name`` means: a block, or a stage's last block; else an error with close names."""
        if name in self.blocks:
            return name
        ends = stage_ends(self.blocks.values())
        if name in ends:
            return ends[name]
        raise ScalelabError(f"{what}: no block or stage named '{name}'{did_you_mean(name, [*self.blocks, *ends])}")


def stage_ends(blocks) -> dict[str, str]:
    """Stage name -> its last block: where a block is expected, a stage means its output."""
    return {b.stage: b.name for b in blocks if b.stage is not None}


def _with_stride(block: Block, stride: int) -> Block:
    if "stride" not in type(block).model_fields:
        return block
    data = block.model_dump(by_alias=True, exclude_unset=True)
    return type(block).model_validate({**data, "stride": stride})


def _warning(spec: Spec, path: tuple, message: str) -> str:
    return str(located_error(spec.source, path, message))


def _expand(spec: Spec, warnings: list[str]) -> list[ResolvedBlock]:
    """Entries -> blocks: stages unroll into stage.0, stage.1, ... (the first takes the stride)."""
    blocks: list[ResolvedBlock] = []
    counts: dict[str, int] = {}
    for i, entry in enumerate(spec.blocks):
        if isinstance(entry, Stage):
            if entry.block.inputs:
                raise located_error(spec.source, ("blocks", i, "block", "from"),
                                    "a stage's block cannot name its inputs; give the stage's first block 'from' in a block of its own")
            inner = getattr(entry.block, "stride", None)
            if "stride" in entry.block.model_fields_set and inner not in (1, (1, 1), [1, 1]):
                applied = (f"the stage's stride {entry.stride} replaces it on the first repeat"
                           if entry.stride is not None else "it applies to the first repeat only")
                warnings.append(_warning(spec, ("blocks", i, "block", "stride"),
                                         f"stride written on the block inside stage '{entry.stage}': {applied}, "
                                         f"every other repeat uses 1; write 'stride:' on the stage instead"))
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


def _wire(spec: Spec, blocks: list[ResolvedBlock]) -> None:
    """Give every block its inputs: the blocks named in from:, else the previous inference block."""
    names = {INPUT}
    previous = INPUT
    for i, b in enumerate(blocks, start=1):
        if b.name in names:
            raise located_error(spec.source, b.path, f"block name '{b.name}' is used twice")
        names.add(b.name)
        b.index = i
        if not b.inputs:
            b.inputs = [previous]
        if not b.training_only:
            previous = b.name
    ends = stage_ends(blocks)
    for b in blocks:
        b.inputs = [src if src in names else ends.get(src, src) for src in b.inputs]  # a stage: its last block
        for src in b.inputs:
            if src not in names:
                hint = did_you_mean(src, [*names, *ends])
                raise located_error(spec.source, b.path + ("from",),
                                    f"block '{b.name}' takes input from unknown block or stage '{src}'{hint}")
        arity = type(b.block).arity
        if arity is None and len(b.inputs) < 2:
            raise located_error(spec.source, b.path, f"a '{b.kind}' block joins two or more inputs; name them with from:")
        if arity == 1 and len(b.inputs) != 1:
            raise located_error(spec.source, b.path + ("from",),
                                f"a '{b.kind}' block takes one input, got {len(b.inputs)}; join them with add or concat first")


def _order(spec: Spec, blocks: list[ResolvedBlock]) -> list[ResolvedBlock]:
    """Topological order, ties broken by spec order (a lexicographical topological sort)."""
    import heapq
    from graphlib import CycleError, TopologicalSorter

    by_name = {b.name: b for b in blocks}
    sorter = TopologicalSorter({b.name: b.inputs for b in blocks})
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


def resolve(spec: Spec, resolution: "int | tuple[int, int] | None" = None) -> Network:
    """Build the block graph and propagate shapes; raise ScalelabError at the first impossible shape."""
    if resolution is None:
        resolution = spec.input.resolution
    elif isinstance(resolution, int):
        resolution = (resolution, resolution)
    if min(resolution) < 1:
        raise ScalelabError(f"resolution must be positive, got {resolution}")
    input_shape: Shape = (spec.input.channels, *resolution)
    warnings: list[str] = []
    blocks = _expand(spec, warnings)
    _wire(spec, blocks)
    ordered = _order(spec, blocks)
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
    inference = [b for b in ordered if not b.training_only]
    if not inference:
        raise located_error(spec.source, ("blocks",), "every block is training-only; nothing computes the output")
    output = inference[-1].name
    used = {src for b in ordered for src in b.inputs}
    for b in inference:
        if b.name not in used and b.name != output:
            warnings.append(_warning(spec, b.path, f"block '{b.name}' ({b.kind}): nothing uses its output (a dead "
                                     f"branch); it is still counted in the totals"))
    return Network(spec, input_shape, {b.name: b for b in ordered}, output, warnings)
