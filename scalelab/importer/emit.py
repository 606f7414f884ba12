"""Block drafts -> a spec: names from the module's qualified names, ``from:`` where a block does not
read the one before it, and only the fields that differ from each kind's defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalelab.blocks import KINDS
from scalelab.importer.mapping import Draft, spec_shape
from scalelab.importer.trace import Traced

if TYPE_CHECKING:  # pragma: no cover
    from torch import fx

INPUT = "input"


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _group_name(members: list[str], traced: Traced) -> str:
    """The module that consists of exactly the folded members (torchvision's Conv2dNormActivation,
    SqueezeExcitation), else the first member (a ResNet's conv1 with its bn1 and relu)."""
    parents = {_parent(m) for m in members}
    if len(parents) == 1 and len(members) > 1:
        parent = parents.pop()
        children = {f"{parent}.{c}" if parent else c for c, _ in traced.submodule(parent).named_children()}
        if parent and children == set(members):
            return parent
    return members[0]


def block_names(drafts: list[Draft], traced: Traced) -> list[str]:
    """One unique name per draft: qualified module names where there are modules, else the scope
    the operation ran in and its name (``layer1.0.add``)."""
    names, used = [], {INPUT}
    for d in drafts:
        if d.members and not d.label:
            base = _group_name(d.members, traced)
        elif d.members and _group_name(d.members, traced) != d.members[0]:
            base = _group_name(d.members, traced)  # torchvision's SqueezeExcitation module
        else:
            base = f"{d.scope}.{d.label}" if d.scope else d.label
            if d.scope.rpartition(".")[2] == d.label:
                base = d.scope  # a module that is one function call (torchvision's StochasticDepth)
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names.append(name)
    return names


def _is_default(kind: str, key: str, value) -> bool:
    info = KINDS[kind].model_fields.get(key)
    if info is None or info.is_required():
        return False
    default = info.default
    if isinstance(default, tuple):
        value = tuple(value) if isinstance(value, list) else (value,) * len(default)
    return value == default


def _trim(fields: dict) -> dict:
    kind = fields["kind"]
    return {"kind": kind, **{k: v for k, v in fields.items() if k != "kind" and not _is_default(kind, k, v)}}


def spec_blocks(drafts: list[Draft], names: list[str], entry: str = INPUT,
                training_only: bool = False) -> tuple[list[dict], dict[str, tuple]]:
    """The spec's block list, and the module's output shape of every block that ends a draft.
    ``entry`` is the block the traced input comes from; training-only blocks name every input
    (the default input, the previous block, skips training-only blocks)."""
    produced: dict[fx.Node, str] = {}  # traced node -> name of the block whose output it is
    blocks, shapes = [], {}
    previous = entry
    for d, name in zip(drafts, names):
        sources = [produced.get(n, entry) for n in d.inputs]
        for i, fields in enumerate(d.chain):
            block_name = name if i == len(d.chain) - 1 else f"{name}.{fields['kind']}"
            block: dict[str, object] = {"name": block_name}
            if i == 0 and sources and (sources != [previous] or training_only):
                block["from"] = sources[0] if len(sources) == 1 else sources
            elif i > 0 and training_only:
                block["from"] = previous
            block.update(_trim(fields))
            if training_only:
                block["training_only"] = True
            blocks.append(block)
            previous = block_name
        produced[d.node] = name
        shapes[name] = spec_shape(d.node, d.channels_last)
    return blocks, shapes


def blocks_yaml(head: dict, blocks: list[dict]) -> str:
    """The spec as YAML, one block per line as the zoo writes them, name first."""
    import yaml

    text = yaml.safe_dump(head, sort_keys=False, width=100)
    return text + "blocks:\n" + "".join(
        "  - " + yaml.safe_dump(b, default_flow_style=True, sort_keys=False, width=10**6) for b in blocks)
