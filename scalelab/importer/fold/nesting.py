"""A region's data flow as nested blocks: a chain of blocks, where each fork that joins again
becomes one block around its branches: an add of the input and a branch is a ``wrap`` (identity or
1x1-projection shortcut), a concatenation of the input and a branch a dense ``wrap`` (join concat,
GhostNet's and DenseNet's), a concatenation of branches an ``inception``. The blocks are proposals:
exactness (``exact``) decides."""

from __future__ import annotations

from typing import Optional

from scalelab.blocks.layers import Shape
from scalelab.importer.fold.common import first_exact, settings, single
from scalelab.importer.fold.items import Item

MERGES = ("add", "concat")


class _Flow:
    """The region's items by the tensor they read, and the ones a nesting has used."""

    def __init__(self, region: list[Item]) -> None:
        self.items = region
        self.readers: dict[str, list[Item]] = {}
        for item in region:
            for t in dict.fromkeys(item.inputs):
                self.readers.setdefault(t, []).append(item)
        self.used: set[str] = set()

    def below(self, start: str) -> set[str]:
        """The tensors computed from ``start`` inside the region."""
        seen, todo = set(), [start]
        while todo:
            for item in self.readers.get(todo.pop(), []):
                if item.name not in seen:
                    seen.add(item.name)
                    todo.append(item.name)
        return seen

    def join(self, start: str) -> Optional[Item]:
        """The first merge that every path from ``start`` reaches."""
        heads = [self.below(r.name) | {r.name} for r in self.readers.get(start, [])]
        for item in self.items:
            if item.kind in MERGES and all(item.name in h for h in heads):
                return item
        return None

    def chain(self, start: str, stop: str) -> Optional[list[dict]]:
        """The blocks that compute ``stop`` from ``start``."""
        blocks: list[dict] = []
        while start != stop:
            readers = [r for r in self.readers.get(start, []) if r.name not in self.used]
            if len(readers) == 1 and readers[0].kind not in MERGES and readers[0].inputs == [start]:
                blocks.append(dict(readers[0].fields))
                self.used.add(readers[0].name)
                start = readers[0].name
                continue
            merge = self.join(start)
            block = self.fork(start, merge) if merge is not None and merge.name not in self.used else None
            if block is None:
                return None
            blocks.append(block)
            start = merge.name  # type: ignore[union-attr]  # fork() found it
        return blocks

    def branch(self, start: str, end: str) -> Optional[list[dict]]:
        """One branch of a fork from ``start`` to the merge input ``end``: empty for the identity."""
        if end == start:
            return []
        first = [r for r in self.readers.get(start, []) if r.name not in self.used and end in self.below(r.name) | {r.name}]
        if len(first) != 1 or first[0].kind in MERGES or first[0].inputs != [start]:
            return None
        self.used.add(first[0].name)
        rest = self.chain(first[0].name, end)
        return None if rest is None else [dict(first[0].fields), *rest]

    def fork(self, start: str, merge: Item) -> Optional[dict]:
        branches = [self.branch(start, t) for t in merge.inputs]
        if any(b is None for b in branches) or len(merge.inputs) < 2:
            return None
        self.used.add(merge.name)
        post = settings(merge).activation if merge.kind == "add" else "none"
        if merge.kind == "concat":
            if branches[0] == [] and len(branches) == 2:
                return wrap({"kind": "wrap", "join": "concat", "body": branches[1], "post": post})
            return {"kind": "inception", "branches": branches} if all(branches) else None
        if len(branches) != 2:
            return None
        body, other = (branches[1], branches[0]) if branches[0] == [] or _projection(branches[0]) else branches
        if other == []:
            return wrap({"kind": "wrap", "body": body, "post": post})
        if not _projection(other):
            return None
        conv = other[0]  # type: ignore[index]
        return wrap({"kind": "wrap", "body": body, "shortcut": "projection", "post": post,
                     "norm_eps": conv.get("norm_eps", 1e-5)})


def _projection(blocks: "list[dict] | None") -> bool:
    """Whether a branch is one 1x1 conv with a norm and no activation (the wrap's projection)."""
    return (blocks is not None and len(blocks) == 1 and blocks[0]["kind"] == "conv" and blocks[0].get("kernel") == 1
            and blocks[0].get("activation") == "none" and blocks[0].get("norm", "batchnorm") == "batchnorm")


def wrap(fields: dict) -> dict:
    """The wrap with the stride of its one strided body block on itself (``stride``, ``stride_at``),
    so that a stage may set it, as the zoo writes residual stages."""
    strided = [i for i, b in enumerate(fields["body"]) if single(b.get("stride", 1)) != 1]
    if len(strided) != 1 or not isinstance(single(fields["body"][strided[0]]["stride"]), int):
        return fields
    k = strided[0]
    body = list(fields["body"])
    stride = single(body[k]["stride"])
    body[k] = {key: v for key, v in body[k].items() if key != "stride"}
    return {**fields, "body": body, "stride": stride, **({"stride_at": k} if k else {})}


def nested(region: list[Item], start: str) -> Optional[dict]:
    """The region as one block: its nesting's one block, or a wrap without shortcut around several
    (where it forks and joins at all, and holds one residual block at most); None where its data
    flow does not nest."""
    flow = _Flow(region)
    blocks = flow.chain(start, region[-1].name)
    if blocks is None or len(flow.used) != len(region):
        return None
    if len(blocks) == 1:
        return blocks[0]
    if not any(item.kind in MERGES for item in region) or sum(map(_residual, blocks)) > 1:
        return None  # a plain chain stays as it is; residual blocks one after another are a stage's
    return wrap({"kind": "wrap", "shortcut": "none", "body": blocks})


def _residual(block: dict) -> bool:
    """Whether a block is one a stage repeats (a residual kind, or a wrap adding a shortcut)."""
    if block["kind"] == "wrap":
        return block.get("join", "add") == "add" and block.get("shortcut") != "none"
    return block["kind"] in ("residual", "bottleneck", "mbconv", "fused_mbconv")


def nest(region: list[Item], shape: Shape, name: str, inputs: list[str]) -> Optional[Item]:
    block = nested(region, inputs[0])
    return None if block is None else first_exact([block], region, shape, name, inputs)
