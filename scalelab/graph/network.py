"""Spec -> DAG of resolved blocks, with shapes propagated through it.

A block's inputs are tensors: a block's output, a stage's (its last block's), or one output of a
block with several outputs (``split``, ``unbind``), named ``<block>.<n>``. An exact block name
wins; ``name.N`` names output N of a several-output block ``name`` (a block or stage of that name
beside it is refused by the unique-name check). A source block (``param``) takes no input.

The execution order comes from the standard library's ``graphlib``; ``Network.graph``, the networkx
DiGraph of the blocks for graph algorithms, is built on first use. Importing networkx costs more
than a whole analysis (see benchmarks/analyze.md), so the analysis path does not pay for it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Optional

from scalelab.blocks import Block
from scalelab.blocks.layers import LayerCost, Node, Shape, ShapeError, definition, elements, fmt_shape, walk
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.limits import MAX_CHANNELS, MAX_ELEMENTS, MAX_RESOLUTION
from scalelab.spec.load import located_error, yaml_path
from scalelab.spec.model import Spec, Stage

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

INPUT = "input"
#: ``block.N``: output N of a block with several outputs (no leading zeros: one name per output)
OUTPUT_NAME = re.compile(r"(.+)\.(0|[1-9][0-9]*)")


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
    layers: Node = None  # type: ignore[assignment]  # resolve() sets it: every block of a Network has its layers
    costs: list[LayerCost] = field(default_factory=list)
    index: int = 0  #: place in the spec, after stages are unrolled (1 = first block)
    #: the block giving each input (``inputs`` names tensors: ``split1.0`` is given by ``split1``)
    sources: list[str] = field(default_factory=list)
    #: each output's shape for a block with several outputs (``out_shape`` is then the tensor they view)
    outputs: tuple[Shape, ...] = ()

    @property
    def kind(self) -> str:
        return self.block.kind

    @property
    def training_only(self) -> bool:
        return self.block.training_only

    @property
    def source(self) -> bool:
        """Whether the block takes no input (a learned tensor: one for the whole batch)."""
        return type(self.block).arity == 0

    @property
    def out_elems(self) -> int:
        """Activation elements per sample of its output: none for a source (it holds weights)."""
        return 0 if self.source else elements(self.out_shape)

    def tensors(self) -> list[str]:
        """The names of the tensors it gives: its own, or ``name.0``, ``name.1``, ... for several."""
        return [f"{self.name}.{i}" for i in range(len(self.outputs))] if self.outputs else [self.name]


@dataclass
class Network:
    spec: Spec
    input_shape: Shape
    blocks: dict[str, ResolvedBlock]  # in execution order
    output: str  # the block whose output is the network's
    warnings: list[str] = field(default_factory=list)  #: likely mistakes that still make a network
    #: training-only blocks left out because they cannot take their input at this resolution: name -> why
    not_applicable: dict[str, str] = field(default_factory=dict)

    @cached_property
    def graph(self) -> "nx.DiGraph":
        """The blocks as a networkx DiGraph (node ``input`` and one node per block, with attributes
        ``index`` in spec order and ``block``; an edge per input)."""
        import networkx as nx

        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_node(INPUT)
        for b in sorted(self.blocks.values(), key=lambda b: b.index):
            graph.add_node(b.name, index=b.index, block=b)
        graph.add_edges_from((src, b.name) for b in self.blocks.values() for src in b.sources)
        return graph

    @property
    def notes(self) -> list[str]:
        """What a report must say about the network beyond its rows."""
        size = "x".join(str(d) for d in self.input_shape[1:])
        return [f"Training-only block '{name}' is not applicable at {size} and is left out: {why}."
                for name, why in self.not_applicable.items()]

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
            kind = type(entry.block)
            if kind.arity == 0 or kind.several_outputs:
                what = "takes no input" if kind.arity == 0 else "gives several outputs"
                raise located_error(spec.source, ("blocks", i, "block", "kind"),
                                    f"a stage repeats its block, each repeat on the previous one's output; a "
                                    f"'{entry.block.kind}' block {what}: write it as a block of its own")
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


def _check_unique(spec: Spec, blocks: list[ResolvedBlock]) -> None:
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


def _wire(spec: Spec, blocks: list[ResolvedBlock]) -> None:
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


def _order(spec: Spec, blocks: list[ResolvedBlock]) -> list[ResolvedBlock]:
    """Topological order, ties broken by spec order (a lexicographical topological sort)."""
    import heapq
    from graphlib import CycleError, TopologicalSorter

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


def _whole_heads(ordered: list[ResolvedBlock], skipped: dict[str, str]) -> dict[str, str]:
    """A head is left out whole: every training-only block connected to one that does not fit."""
    head_of = {b.name: b.name for b in ordered if b.training_only}  # union-find over training-only blocks

    def root(name: str) -> str:
        while head_of[name] != name:
            head_of[name] = head_of[head_of[name]]
            name = head_of[name]
        return name

    for b in ordered:
        for src in b.sources if b.training_only else ():
            if src in head_of:
                head_of[root(src)] = root(b.name)
    failed: dict[str, str] = {}
    for name in skipped:  # in execution order: each head names its first block that does not fit
        failed.setdefault(root(name), name)
    for b in ordered:
        first = failed.get(root(b.name)) if b.training_only else None
        if first is not None:
            skipped.setdefault(b.name, f"it belongs to the head whose block '{first}' does not fit")
    return {b.name: skipped[b.name] for b in ordered if b.name in skipped}


def _input_shape(spec: Spec, b: ResolvedBlock, src: str, shapes: dict[str, Shape],
                 outputs: dict[str, tuple[Shape, ...]]) -> Shape:
    """The shape of tensor ``src``: a block's output, or output N of a block with several."""
    if src in shapes:
        return shapes[src]
    owner, _, n = src.rpartition(".")  # _wire resolved every other name
    pieces = outputs[owner]
    if int(n) >= len(pieces):
        named = f" ({owner}.0 to {owner}.{len(pieces) - 1})" if len(pieces) > 1 else f" ({owner}.0)" if pieces else ""
        raise located_error(spec.source, b.path + ("from",), f"block '{b.name}' takes output {n} of '{owner}', which "
                            f"has {len(pieces)} output{'' if len(pieces) == 1 else 's'}{named}")
    return pieces[int(n)]


def _propagate(spec: Spec, ordered: list[ResolvedBlock], input_shape: Shape) -> dict[str, str]:
    """Give every block its input and output shapes and its costs, in execution order; return the
    training-only blocks that cannot take their input (name -> why)."""
    shapes: dict[str, Shape] = {INPUT: input_shape}
    outputs: dict[str, tuple[Shape, ...]] = {}
    skipped: dict[str, str] = {}
    for b in ordered:
        missing = next((s for s in b.sources if s in skipped), None) if skipped else None
        if missing is not None:  # only training-only blocks take input from training-only ones
            skipped[b.name] = f"its input '{missing}' is not applicable"
            continue
        ins = [_input_shape(spec, b, s, shapes, outputs) for s in b.inputs]
        b.in_shape = ins[0] if type(b.block).arity == 1 else ins
        try:
            b.layers = b.block.layers(b.in_shape)  # type: ignore[arg-type]  # one shape, or a merge's list (arity)
            result = walk(b.layers, b.in_shape)
            if type(b.block).several_outputs:
                b.outputs = definition(b.layers).pieces(b.in_shape)  # type: ignore[union-attr]  # a SeveralOutputs layer
        except ShapeError as exc:
            got = "input " + " and ".join(fmt_shape(s) or "a scalar" for s in ins) if ins else "its shape"
            if b.training_only:
                skipped[b.name] = f"it cannot take {got}: {exc}"
                continue
            raise located_error(spec.source, b.path,
                                f"block '{b.name}' ({b.kind}) cannot take {got}: {exc}") from None
        b.out_shape, b.costs = result.out, result.costs
        _check_size(spec, b)
        shapes[b.name] = b.out_shape
        outputs[b.name] = b.outputs
    return skipped


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
    warnings: list[str] = []
    blocks = _expand(spec, warnings)
    _check_unique(spec, blocks)
    _ramp_drop_path(spec, blocks)
    _wire(spec, blocks)
    ordered = _order(spec, blocks)
    skipped = _propagate(spec, ordered, input_shape)
    inference = [b for b in ordered if not b.training_only]
    if not inference:
        raise located_error(spec.source, ("blocks",), "every block is training-only; nothing computes the output")
    output = inference[-1].name
    if inference[-1].outputs:
        raise located_error(spec.source, inference[-1].path, f"the network ends on block '{output}', a "
                            f"'{inference[-1].kind}' block with several outputs; end it on one of them (a block "
                            f"taking from: {output}.0, ...)")
    used = {src for b in ordered for src in b.sources}
    for b in inference:
        if b.name not in used and b.name != output:
            warnings.append(_warning(spec, b.path, f"block '{b.name}' ({b.kind}): nothing uses its output (a dead "
                                     f"branch); it is still counted in the totals"))
    if skipped:
        skipped = _whole_heads(ordered, skipped)
    kept = {b.name: b for b in ordered if b.name not in skipped}
    return Network(spec, input_shape, kept, output, warnings, skipped)
