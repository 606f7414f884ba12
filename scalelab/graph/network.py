"""Spec -> DAG of resolved blocks, with shapes propagated through it. Stages are expanded here;
the wiring (names, inputs, order) is ``scalelab.graph.wiring``'s.

The execution order comes from the standard library's ``graphlib``; ``Network.graph``, the networkx
DiGraph of the blocks for graph algorithms, is built on first use. Importing networkx costs more
than a whole analysis (see benchmarks/analyze.md), so the analysis path does not pay for it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Optional

from scalelab.blocks import Block
from scalelab.blocks.layers import LayerCost, Node, Shape, ShapeError, definition, elements, fmt_shape, walk
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.graph.wiring import INPUT, check_unique, order, stage_ends, wire
from scalelab.limits import MAX_CHANNELS, MAX_ELEMENTS, MAX_RESOLUTION
from scalelab.spec.load import located_error
from scalelab.spec.model import Spec, Stage

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx



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
                blocks.append(ResolvedBlock(f"{entry.stage}.{r}", block.repeated(r), ("blocks", i), [], entry.stage))
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
    check_unique(spec, blocks)
    _ramp_drop_path(spec, blocks)
    wire(spec, blocks)
    ordered = order(spec, blocks)
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
