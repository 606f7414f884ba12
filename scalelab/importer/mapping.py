"""Captured graph -> block drafts: every node on the sample's path is mapped through the table (or a
pattern), then conv + batchnorm + activation, and linear or add + activation, fold into one block.

Nodes whose inputs all derive from parameters, buffers or constants (no batch axis) are weight-side:
they make no block of their own. A parameter belongs to the first block that reads it, directly or
through weight-side nodes, so that the spec counts each exactly once."""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from scalelab.importer.capture import BatchMerged, Captured, scope_of
from scalelab.importer.ops_activation import folds
from scalelab.importer.patterns import channel_split, find_channel_shuffle, find_squeeze_excite, permute_layout
from scalelab.importer.ops_tensor import OPERANDS, split_outputs
from scalelab.importer.params import operand_param
from scalelab.importer.table import ALIAS, PASSIVE, Call, Unsupported, handler_of, label
from scalelab.importer.weight_side import STATE

#: operators whose first output is the result and the others are statistics nobody reads in eval
FIRST_OUTPUT = ("native_batch_norm_legit_no_training", "max_pool2d_with_indices")  # as short_label writes them


@dataclass
class Draft:
    """A block to be: its fields (a chain when one operator needs several blocks), the captured node
    whose output it produces, the nodes feeding it, the module scopes folded into it, and the source
    state (parameters, buffers) it holds, in the order it reads them."""

    chain: list[dict]
    node: Any
    inputs: list
    members: list[str] = field(default_factory=list)
    label: str = ""
    opaque: str = ""  # the unsupported operator this block stands for, if any
    state: list[str] = field(default_factory=list)
    channels_last: bool = False  # the captured output is (height, width, channels)
    scope: str = ""  # the module the first operator ran in
    parts: dict = field(default_factory=dict)  # getitem node -> which output of this block it is
    fixed_name: str = ""  # a param block: the parameter's own name

    def __post_init__(self) -> None:
        self.scope = self.scope or scope_of(self.node)


@dataclass
class Problem:
    label: str
    where: str
    detail: str


@dataclass
class Mapped:
    drafts: list[Draft]
    problems: list[Problem]

    def unsupported_summary(self) -> list[tuple[str, int, list[str], str]]:
        """(operator, count, places, detail) per unsupported operator, most frequent first."""
        out = []
        for name, count in Counter(p.label for p in self.problems).most_common():
            places = list(dict.fromkeys(p.where or "<top level>" for p in self.problems if p.label == name))
            detail = next(p.detail for p in self.problems if p.label == name)
            out.append((name, count, places, detail))
        return out


def short_label(node) -> str:
    packet = getattr(node.target, "_overloadpacket", None)
    name = packet.__name__ if packet is not None else getattr(node.target, "__name__", "op")
    return str(name).strip("_")


def _sample_side(cap: Captured) -> set:
    """Nodes that depend on the input (the rest derive from parameters, buffers and constants)."""
    side = {n for n in cap.nodes() if n.op == "placeholder" and n not in cap.state}
    for n in cap.nodes():
        if n.op == "call_function" and any(a in side for a in n.all_input_nodes):
            side.add(n)
    return side


class _Walk:
    """The state of one pass over the graph."""

    def __init__(self, cap: Captured) -> None:
        self.cap = cap
        self.drafts: list[Draft] = []
        self.problems: list[Problem] = []
        self.alias: dict = {}
        self.several: dict = {}  # node with several outputs -> (label, inputs, parts or None)
        self.last: set = set()  # nodes whose output is a channels-last feature map
        self.side = _sample_side(cap)
        self.owned: set = set()  # state placeholders a block holds already
        self.split_drafts: dict = {}  # split or unbind node -> its draft
        self.params: dict = {}  # weight-side operand node -> its source block's draft
        self.reads: dict = {}  # weight-side operand node -> the source state it reads (held or recomputed)

    def inputs(self, node) -> list:
        """The sample-side tensors ``node`` reads (not the sizes a view reads from its input)."""
        return [self.alias.get(a, a) for a in node.all_input_nodes if a in self.side and not _is_size(a)]

    def state_of(self, node) -> list[str]:
        """The source state ``node`` reads, directly or through weight-side nodes, not held yet."""
        seen, order, todo = set(), [], list(node.all_input_nodes)
        while todo:
            n = todo.pop(0)
            if n in seen or n in self.side:
                continue
            seen.add(n)
            if n in self.cap.state:
                order.append(n)
            else:
                todo.extend(n.all_input_nodes)
        fresh = [n for n in order if n not in self.owned]
        self.owned.update(fresh)
        return [self.cap.state[n] for n in fresh]

    def problem(self, node, detail: str) -> str:
        name = label(node.target)
        self.problems.append(Problem(name, scope_of(node), detail))
        return name

    def opaque(self, node, name: str, inputs: list, state: list[str]) -> list[dict]:
        """An opaque block: the shape and the parameters are known, the arithmetic is not."""
        params = sum(int(p.numel()) for n, p in _named_state(self.cap) if n in state and n in self.cap.trainable)
        try:
            shape = self.cap.shape_of(node) or ()
        except BatchMerged:
            shape = ()
        kind = "opaque_merge" if len(inputs) > 1 else "opaque"
        return [{"kind": kind, "op": name, "shape": list(shape) or [1], "params": params}]


def _is_size(node) -> bool:
    val = node.meta.get("val")
    return val is not None and not hasattr(val, "shape") and not isinstance(val, (list, tuple))


def _named_state(cap: Captured):
    yield from cap.root.named_parameters()
    yield from cap.root.named_buffers()


def _map_node(walk: _Walk, node, channels_last: bool):
    """The node's block chain, ALIAS, or (after recording the problem) None."""
    handler = handler_of(node.target)
    try:
        if handler is None:
            raise Unsupported("no spec block computes it")
        return handler(Call(node, walk.cap, channels_last))
    except (Unsupported, BatchMerged) as exc:
        walk.problem(node, str(exc))
        return None


def _add(walk: _Walk, node, chain: "list | None", inputs: list, state: list[str], channels_last: bool,
         opaque: str = "") -> None:
    if chain is None:
        opaque = label(node.target)
        chain = walk.opaque(node, opaque, inputs, state)
    walk.drafts.append(Draft(chain, node, inputs, [scope_of(node)], short_label(node), opaque, state, channels_last))


def _visit(walk: _Walk, node, patterns: dict) -> None:
    cap = walk.cap
    inputs = walk.inputs(node)
    channels_last = any(n in walk.last for n in node.all_input_nodes)
    if node in patterns:
        fields, x, members, inner = patterns[node]
        state = [name for n in [*inner, node] for name in walk.state_of(n)]
        walk.drafts.append(Draft([fields], node, [walk.alias.get(x, x)], members, fields["kind"], "", state))
    elif node.target is operator.getitem:
        _part(walk, node)
    elif isinstance(node.meta.get("val"), (list, tuple)) and short_label(node) not in FIRST_OUTPUT:
        _several(walk, node, inputs, channels_last)
    elif (layout := permute_layout(node, cap, channels_last)) is not None:
        walk.alias[node] = inputs[0]  # between channels-first and channels-last: no arithmetic
        if layout == "last":
            walk.last.add(node)
    else:
        state = walk.state_of(node)
        chain = _map_node(walk, node, channels_last)
        if channels_last:
            walk.last.add(node)
        if chain == ALIAS:
            walk.alias[node] = inputs[0]
            return
        if chain and STATE in chain[0]:  # a block whose state reads in its module's order, not the graph's
            chain[0] = dict(chain[0])
            order = chain[0].pop(STATE)
            state = [n for n in order if n in state] + [n for n in state if n not in order]
        if chain and OPERANDS in chain[0]:
            chain[0] = dict(chain[0])
            operands = _operands(walk, node, chain[0].pop(OPERANDS))
            if operands is None:
                chain = None
            inputs = operands or inputs
            held = {name for o in operands or () if o in walk.reads for name in walk.reads[o]}
            state = [name for name in state if name not in held]  # the source blocks hold (or recompute) them
        _add(walk, node, chain, inputs, state, channels_last)


def _operands(walk: _Walk, node, operands: list) -> "list | None":
    """The inputs of a block that reads tensors in order, a parameter among them (as a ``param``
    block, made at its first use); None (a problem recorded) where an operand is computed from
    parameters."""
    inputs = []
    for operand in operands:
        if operand in walk.side:
            inputs.append(walk.alias.get(operand, operand))
            continue
        if operand not in walk.params:
            try:
                fields, state, nodes, name = operand_param(walk.cap, node, operand)
            except Unsupported as exc:
                walk.problem(node, str(exc))
                return None
            walk.owned.update(nodes)
            walk.reads[operand] = [walk.cap.state[n] for n in nodes]
            walk.params[operand] = Draft([fields], operand, [], [], fields["kind"], state=state, fixed_name=name)
            walk.drafts.append(walk.params[operand])
        inputs.append(operand)
    return inputs


def _several(walk: _Walk, node, inputs: list, channels_last: bool) -> None:
    """An operator with several outputs: chunks of channels as ``channel_split`` blocks (one per
    output), split and unbind as one block whose outputs are named ``block.N``, else opaque parts."""
    try:
        parts = channel_split(node, walk.cap)
    except BatchMerged:  # pieces of a tensor whose batch is merged into an axis: not channels
        parts = None
    chain = None
    if parts is None and short_label(node) in ("split", "split_with_sizes", "chunk", "unbind") and not channels_last:
        try:
            chain = split_outputs(Call(node, walk.cap))
        except (Unsupported, BatchMerged) as exc:  # each part is then an opaque block like its producer
            walk.problem(node, str(exc))
    elif parts is None:
        walk.problem(node, "no block has several outputs")
    if chain is not None:
        walk.drafts.append(Draft(chain, node, inputs, [scope_of(node)], short_label(node)))
        walk.split_drafts[node] = walk.drafts[-1]
    walk.several[node] = (label(node.target), inputs, parts, walk.state_of(node))


def _part(walk: _Walk, node) -> None:
    """One output of an operator with several: the result of a FIRST_OUTPUT operator, a channel
    split's piece, or an opaque block like its producer."""
    producer = node.args[0]
    if short_label(producer) in FIRST_OUTPUT:
        if node.args[1] == 0:
            walk.alias[node] = walk.alias.get(producer, producer)
        return
    name, sources, parts, state = walk.several[producer]
    index = node.args[1]
    if producer in walk.split_drafts:
        walk.split_drafts[producer].parts[node] = index
        return
    if parts is not None:
        chain = [{"kind": "channel_split", "parts": parts, "take": index}]
        walk.drafts.append(Draft(chain, node, sources, [], f"{short_label(producer)}{index}"))
    else:
        walk.drafts.append(Draft(walk.opaque(node, name, sources, state), node, sources, [],
                                 f"{short_label(producer)}{index}", name, list(state)))
        state.clear()  # the first part holds the producer's parameters


def _first_output_producer(walk: _Walk, node) -> None:
    state = walk.state_of(node)
    chain = _map_node(walk, node, any(n in walk.last for n in node.all_input_nodes))
    _add(walk, node, chain, walk.inputs(node), state, False)


def map_graph(cap: Captured) -> Mapped:
    """Every node on the sample's path to a draft or an alias of its input; an operator no block
    states becomes a problem and an opaque draft (the caller refuses, or keeps them when told to)."""
    walk = _Walk(cap)
    patterns, absorbed = {}, set()
    for find in (find_squeeze_excite, find_channel_shuffle):
        found, inside = find(cap)
        patterns.update(found)
        absorbed |= inside
    for node in cap.nodes():
        if node.op != "call_function" or node not in cap.live or node in absorbed or node not in walk.side:
            continue
        if node.target in PASSIVE and node.target is not operator.getitem:
            continue  # sizes, tuple parts
        if short_label(node) in FIRST_OUTPUT:
            _first_output_producer(walk, node)
            last = walk.drafts[-1]
            walk.alias[node] = node  # its getitem 0 reads this draft
            last.node = node
            continue
        try:
            _visit(walk, node, patterns)
        except BatchMerged as exc:  # a matcher met a tensor whose batch is merged into an axis
            walk.problem(node, str(exc))
            _add(walk, node, None, walk.inputs(node), walk.state_of(node), False)
    return Mapped(_fold(walk.drafts), walk.problems)


#: block kinds with an activation field an activation after them folds into
TAKES_ACTIVATION = ("conv", "linear", "add", "channel_linear")


def _fold(drafts: list[Draft]) -> list[Draft]:
    """Absorb a batchnorm into the conv before it, and an activation into the conv, linear or add
    before it, when the earlier output feeds nothing else."""
    by_input: dict = {}
    for d in drafts:
        if len(d.inputs) == 1:
            by_input.setdefault(d.inputs[0], []).append(d)
    removed: set = set()
    for d in drafts:
        if id(d) in removed or len(d.chain) != 1 or d.opaque:
            continue
        fields = d.chain[0]
        for step in ("norm", "activation"):
            readers = by_input.get(d.node, [])
            if len(readers) != 1 or _users(d.node) != 1 or len(readers[0].chain) != 1 or readers[0].opaque:
                continue
            nxt, nfields = readers[0], readers[0].chain[0]
            if step == "norm" and nfields["kind"] == "batchnorm" and fields["kind"] == "conv" and fields["norm"] == "none":
                fields.update(norm="batchnorm", norm_eps=nfields["norm_eps"])
            elif step == "activation" and folds(nfields) and fields["kind"] in TAKES_ACTIVATION \
                    and fields.get("activation", "none") == "none":
                fields["activation"] = folds(nfields)
            else:
                continue
            removed.add(id(nxt))
            d.members += nxt.members
            d.state += nxt.state
            d.node = nxt.node  # readers of the absorbed output now read the folded block
    return [d for d in drafts if id(d) not in removed]


def _users(node) -> int:
    """Readers of a node's output, seen through the FIRST_OUTPUT operators' tuple."""
    users = list(node.users)
    if short_label(node) in FIRST_OUTPUT:
        users = [u for g in users if g.args[1] == 0 for u in g.users]
    return len(users)
