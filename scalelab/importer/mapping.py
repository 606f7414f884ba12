"""Traced graph -> block drafts: every tensor node is mapped through the table, then the usual
patterns are folded into the block kinds that state them exactly:
conv + batchnorm + activation -> ``conv``; linear or add + activation -> one block;
pool, 1x1 conv, activation, 1x1 conv, gate, product -> ``squeeze_excite``."""

from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from scalelab.importer.patterns import channel_split, find_channel_shuffle, find_squeeze_excite, permute_layout
from scalelab.importer.table import ALIAS, Call, Unsupported, op_key, op_label, table, takes_channels_last
from scalelab.importer.trace import Traced, scope_of, shape_of


@dataclass
class Draft:
    """A block to be: its fields (a chain when one operation needs several blocks), the traced node
    whose output it produces, the nodes feeding it, and the modules folded into it."""

    chain: list[dict]
    node: Any
    inputs: list
    members: list[str] = field(default_factory=list)
    label: str = ""  # operation name, for blocks of functions (add, cat, ...)
    opaque: str = ""  # the unsupported operation this block stands for, if any
    scope: str = ""  # the module the first operation ran in
    channels_last: bool = False  # the traced output is (height, width, channels)

    def __post_init__(self):
        self.scope = scope_of(self.node)


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
        """(operation, count, places, detail) per unsupported operation, most frequent first."""
        counts = Counter(p.label for p in self.problems)
        out = []
        for label, count in counts.most_common():
            places = list(dict.fromkeys(p.where or "<top level>" for p in self.problems if p.label == label))
            detail = next(p.detail for p in self.problems if p.label == label)
            out.append((label, count, places, detail))
        return out


def tensor_inputs(node) -> list:
    """The tensor-valued nodes a node reads, in argument order (lists such as cat's included)."""
    found: list = []

    def visit(a):
        if isinstance(a, (list, tuple)):
            for x in a:
                visit(x)
        elif hasattr(a, "op") and a.op != "get_attr" and shape_of(a) is not None:
            found.append(a)

    visit(list(node.args) + list(node.kwargs.values()))
    return found


def _handler(node, traced: Traced):
    return table().get(op_key(node, traced.module))


def _sole_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


# --------------------------------------------------------------------------------------------------
# Mapping and folding


def _several(node) -> bool:
    """Whether the node yields several tensors (chunk, split): no block has several outputs."""
    meta = node.meta.get("tensor_meta")
    return isinstance(meta, (tuple, list)) and not hasattr(meta, "shape")  # TensorMetadata is a tuple too


def _part_of_several(node) -> bool:
    return node.target is operator.getitem and hasattr(node.args[0], "op") and _several(node.args[0])


def _label(node, traced: Traced) -> str:
    return op_label(op_key(node, traced.module))


def _short_label(node) -> str:
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "op")
    return str(name).strip("_").replace("iadd", "add")


def spec_shape(node, channels_last: bool) -> tuple:
    """The node's shape per sample as a spec states it: channels first."""
    shape = shape_of(node)
    return (shape[-1], *shape[:-1]) if channels_last else shape  # type: ignore[index,return-value]  # a tensor node


def _opaque(node, label: str, inputs: list, traced: Traced, channels_last: bool = False) -> list[dict]:
    """An opaque block: the shape and parameters are known, the arithmetic is not."""
    params = sum(p.numel() for p in traced.submodule(node.target).parameters()) if node.op == "call_module" else 0
    params += sum(traced.module.get_parameter(a.target).numel() for a in [*node.args, *node.kwargs.values()]
                  if hasattr(a, "op") and a.op == "get_attr" and _is_parameter(traced, a.target))
    kind = "opaque_merge" if len(inputs) > 1 else "opaque"
    return [{"kind": kind, "op": label, "shape": list(spec_shape(node, channels_last)), "params": params}]


def _is_parameter(traced: Traced, target: str) -> bool:
    try:
        traced.module.get_parameter(target)
        return True
    except AttributeError:
        return False


def _map_node(node, traced: Traced, problems: list[Problem], channels_last: bool = False):
    """The node's block chain, ALIAS, or (after recording the problem) None."""
    module = traced.submodule(node.target) if node.op == "call_module" else None
    handler = _handler(node, traced)
    try:
        if handler is None:
            raise Unsupported("no spec block computes it")
        if channels_last and not takes_channels_last(handler):
            raise Unsupported("on a feature map permuted to channels-last")
        return handler(Call(node, module, channels_last))
    except Unsupported as exc:
        problems.append(Problem(_label(node, traced), scope_of(node), str(exc)))
        return None


def map_graph(traced: Traced) -> Mapped:
    """Every tensor node to a draft or an alias of its input; an operation no block states becomes
    a problem and an opaque draft (the caller refuses, or keeps them when told to)."""
    drafts: list[Draft] = []
    problems: list[Problem] = []
    alias: dict = {}
    several: dict = {}  # node with several outputs -> (its label, its inputs, chunks along channels or None)
    last: set = set()  # nodes whose output is a channels-last feature map
    patterns, absorbed = {}, set()
    for find in (find_squeeze_excite, find_channel_shuffle):
        found, inside = find(traced)
        patterns.update(found)
        absorbed |= inside
    for node in traced.nodes():
        if node.op in ("placeholder", "output", "get_attr") or node in absorbed:
            continue  # pattern internals and constants
        inputs = [alias.get(n, n) for n in tensor_inputs(node)]
        channels_last = any(n in last for n in tensor_inputs(node))
        if node in patterns:
            fields, x, members = patterns[node]
            drafts.append(Draft([fields], node, [alias.get(x, x)], members, fields["kind"]))
        elif _part_of_several(node):  # one output of a chunk or split
            drafts.append(_part(node, several[node.args[0]], traced))
        elif shape_of(node) is None:
            if _several(node):
                parts = channel_split(node)
                if parts is None:
                    problems.append(Problem(_label(node, traced), scope_of(node), "no block has several outputs"))
                several[node] = (_label(node, traced), inputs, parts)
        elif (layout := permute_layout(node, channels_last)) is not None:
            alias[node] = inputs[0]  # a permute between channels-first and channels-last moves no arithmetic
            if layout == "last":
                last.add(node)
        else:
            result = _map_node(node, traced, problems, channels_last)
            if channels_last:
                last.add(node)
            if result == ALIAS:
                alias[node] = inputs[0]
                continue
            members = [str(node.target)] if node.op == "call_module" else []
            label = "" if members else _short_label(node)
            unknown = _label(node, traced) if result is None else ""
            if unknown:
                result = _opaque(node, unknown, inputs, traced, channels_last)
            drafts.append(Draft(result, node, inputs, members, label, opaque=unknown, channels_last=channels_last))
    return Mapped(_fold(drafts), problems)


def _part(node, producer: tuple, traced: Traced) -> Draft:
    """A block for one output of a chunk: a channel split, or opaque like its producer."""
    label, sources, parts = producer
    index = node.args[1]
    name = f"{_short_label(node.args[0])}{index}"
    if parts is not None:
        return Draft([{"kind": "channel_split", "parts": parts, "take": index}], node, sources, label=name)
    return Draft(_opaque(node, label, sources, traced), node, sources, label=name, opaque=label)


#: block kinds with an activation field an activation after them folds into
TAKES_ACTIVATION = ("conv", "linear", "add", "channel_linear")


def _fold(drafts: list[Draft]) -> list[Draft]:
    """Absorb a batchnorm into the conv before it, and an activation into the conv, linear or add
    before it, when the earlier output feeds nothing else."""
    by_node = {d.node: d for d in drafts}
    removed: set = set()
    for d in drafts:
        if id(d) in removed or len(d.chain) != 1:
            continue
        fields = d.chain[0]
        for step in ("norm", "activation"):
            user = _sole_user(d.node)
            nxt = by_node.get(user)
            if nxt is None or len(nxt.chain) != 1 or nxt.inputs != [d.node]:
                continue
            kind = nxt.chain[0]["kind"]
            if step == "norm" and kind == "batchnorm" and fields["kind"] == "conv" and fields["norm"] == "none":
                fields.update(norm="batchnorm", norm_eps=nxt.chain[0]["norm_eps"])
            elif step == "activation" and kind == "activation" and fields["kind"] in TAKES_ACTIVATION \
                    and fields.get("activation", "none") == "none":
                fields["activation"] = nxt.chain[0]["function"]
            else:
                continue
            removed.add(id(nxt))
            d.members += nxt.members
            by_node[nxt.node] = d
            d.node = nxt.node  # readers of the absorbed output now read the folded block
    return [d for d in drafts if id(d) not in removed]
