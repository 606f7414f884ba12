"""Block drafts -> a spec: names from the module's qualified names, ``from:`` where a block does not
read the one before it, and only the fields that differ from each kind's defaults."""

from __future__ import annotations

from collections import defaultdict

from scalelab.blocks import KINDS
from scalelab.importer.capture import Captured
from scalelab.importer.mapping import Draft

INPUT = "input"


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


class _Modules:
    """The source module's named modules: which are leaves, which children a parent has."""

    def __init__(self, cap: Captured) -> None:
        self.children = {n: {f"{n}.{c}" if n else c for c, _ in m.named_children()} for n, m in cap.root.named_modules()}

    def leaf(self, scope: str) -> bool:
        return bool(scope) and scope in self.children and not self.children[scope]


def _base(d: Draft, modules: _Modules, several: set) -> str:
    """The module that consists of exactly the folded members (torchvision's Conv2dNormActivation,
    SqueezeExcitation), else the first member's module if it is a leaf running this one operator,
    else the scope and the operator (``layer1.0.add``)."""
    members = list(dict.fromkeys(d.members))
    parents = {_parent(m) for m in members}
    if len(members) > 1 and len(parents) == 1 and all(modules.leaf(m) for m in members):
        parent = parents.pop()
        if parent and modules.children.get(parent) == set(members):
            return parent
    if modules.leaf(d.scope) and d.scope not in several and (not members or members[0] == d.scope):
        return d.scope
    return f"{d.scope}.{d.label}" if d.scope else d.label


def block_names(drafts: list[Draft], cap: Captured) -> list[str]:
    """One unique name per draft: qualified module names where there are modules, else the scope
    the operator ran in and its name; a leaf module running several operators gives
    ``module.operator`` blocks."""
    modules = _Modules(cap)
    labels = defaultdict(set)
    for d in drafts:
        if d.members:
            labels[d.members[0]].add(d.label)
    several = {scope for scope, seen in labels.items() if len(seen) > 1}
    names, used = [], {INPUT}
    for d in drafts:
        base = d.fixed_name or _base(d, modules, several)
        if not d.fixed_name and base not in d.members and base in modules.children and base not in {_parent(m) for m in d.members}:
            base = f"{base}_op"  # an operator named like a module that is not this block
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


def spec_shape(cap: Captured, d: Draft) -> "tuple | None":
    """The draft's output shape per sample as the spec states it: channels first."""
    shape = cap.shape_of(d.node)
    if shape is None or not d.channels_last:
        return shape
    return (shape[-1], *shape[:-1])


def spec_blocks(drafts: list[Draft], names: list[str], cap: Captured, entry: str = INPUT,
                training_only: bool = False) -> tuple[list[dict], dict[str, tuple], list[tuple[list[str], list[str]]]]:
    """The spec's block list, the module's output shape of every block that ends a draft, and for
    each draft its blocks' names with the source state they hold. ``entry`` is the block the
    captured input comes from; training-only blocks name every input."""
    produced: dict = {}  # captured node -> name of the block whose output it is
    blocks, shapes, held = [], {}, []
    previous = entry
    for d, name in zip(drafts, names):
        sources = [produced.get(n, entry) for n in d.inputs]
        chain_names = []
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
            chain_names.append(block_name)
            previous = block_name
        produced[d.node] = name
        produced.update({g: f"{name}.{i}" for g, i in d.parts.items()})
        shape = spec_shape(cap, d)
        if shape is not None and not d.fixed_name:
            shapes[name] = shape
        held.append((chain_names, list(d.state)))
    return blocks, shapes, held


def blocks_yaml(head: dict, blocks: list[dict]) -> str:
    """The spec as YAML, one block per line as the zoo writes them, name first."""
    import yaml

    text = yaml.safe_dump(head, sort_keys=False, width=100)
    return text + "blocks:\n" + "".join(
        "  - " + yaml.safe_dump(b, default_flow_style=True, sort_keys=False, width=10**6) for b in blocks)
