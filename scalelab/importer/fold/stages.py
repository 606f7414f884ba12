"""Stages as the zoo writes them: consecutive folded blocks of one kind with the same settings,
under one parent module, become ``{stage, repeat, stride, block}``; the first repeat takes the
stride and the channel change (``scalelab.graph`` expands a stage the same way). A stage is
written only where it expands to exactly the blocks it replaces, layer for layer."""

from __future__ import annotations

from dataclasses import dataclass

from scalelab.blocks import KINDS
from scalelab.blocks.base import Block
from scalelab.blocks.layers import Conv
from scalelab.importer.fold.exact import candidate_layers
from scalelab.importer.fold.items import Item, signature

#: the kinds a stage repeats (a folded block that takes a stride of its own)
STAGE_KINDS = ("residual", "bottleneck", "mbconv", "fused_mbconv", "wrap", "transformer", "swin_block")


@dataclass
class Stage:
    name: str
    items: list[Item]
    stride: int
    block: dict

    def names(self) -> list[str]:
        return [f"{self.name}.{r}" for r in range(len(self.items))]

    def line(self) -> dict:
        return {"stage": self.name, "repeat": len(self.items), **({"stride": self.stride} if self.stride != 1 else {}),
                "block": self.block}

    def expands_exactly(self) -> bool:
        """Whether each repeat, as the graph expands it (the stage's stride on the first, 1 on the
        rest), states its block's layers."""
        for r, item in enumerate(self.items):
            strided = "stride" in KINDS[self.block["kind"]].model_fields  # as the graph expands it: a kind without one keeps none
            block = {**self.block, "stride": self.stride if r == 0 else 1} if strided else self.block
            if KINDS[block["kind"]].repeated is not Block.repeated:  # a kind whose repeats differ (Swin's shifts)
                block = KINDS[block["kind"]].model_validate(block).repeated(r).model_dump(by_alias=True, exclude_unset=True)
            stated = candidate_layers(block, item.in_shape)  # type: ignore[arg-type]
            if stated is None or stated[0] != item.out_shape or [signature(c) for c in stated[1]] != [
                    layer.signature for layer in item.layers]:
                return False
        return True

    def repeats_further(self) -> bool:
        """Whether one more repeat (stride 1, reading the last one's output), as depth scaling adds,
        states the block the stage repeats: its output shape unchanged, each conv still depthwise or
        not. A block whose body states its input's count (Xception's entry: a depthwise conv over the
        64 channels it reads, then 128) would repeat as another network, or none."""
        strided = "stride" in KINDS[self.block["kind"]].model_fields

        def at(stride: int) -> dict:
            return {**self.block, "stride": stride} if strided else self.block

        last = self.items[-1]
        first = candidate_layers(at(self.stride), self.items[0].in_shape)  # type: ignore[arg-type]
        further = candidate_layers(at(1), last.out_shape)
        if further is None or first is None or further[0] != last.out_shape:
            return False
        return all(_depthwise(a) == _depthwise(b) for a, b in zip(_convs(first[1]), _convs(further[1])))


def _convs(costs: list) -> list[Conv]:
    return [c.node for c in costs if isinstance(c.node, Conv)]


def _depthwise(conv: Conv) -> bool:
    return conv.groups > 1 and conv.groups == conv.in_ch


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _key(item: Item) -> "tuple[int, dict] | None":
    """(stride, the settings a stage repeats) of a block a stage may hold."""
    if not item.folded or item.kind not in STAGE_KINDS or item.training_only or item.fields.get("shortcut") == "none":
        return None  # a wrap without shortcut is a module's part (a ghost module), not a stage's block
    stride = item.fields.get("stride", 1)
    return (stride, {k: v for k, v in item.fields.items() if k not in ("stride", "stride_at")}) if isinstance(stride, int) else None


def _groups(items: list[Item]) -> list[list[Item]]:
    """Runs of like blocks, each reading the one before it (the first, the item before the run);
    an item that cannot start a stage is a run of its own, marked by a trailing None."""
    runs: list[list] = []
    for i, item in enumerate(items):
        key = _key(item)
        previous = items[i - 1].name if i else "input"
        if runs and runs[-1][-1] is not None and key is not None and key[0] == 1 and item.inputs == [runs[-1][-1].name]:
            head = _key(runs[-1][0])
            if head is not None and head[1] == key[1] and _parent(item.name) == _parent(runs[-1][0].name):
                runs[-1].append(item)
                continue
        runs.append([item] if key is not None and item.inputs == [previous] else [item, None])
    return runs


def _name(run: list[Item], items: list[Item], taken: set[str]) -> str:
    """The common module prefix when the run is all of that module's blocks, else the block's own
    name, else the parent and the range of indices (``features.2-3``)."""
    parent = _parent(run[0].name)
    names = [i.name for i in run]
    under = [i.name for i in items if i.name.startswith(parent + ".")] if parent else []
    if parent and under == names:
        base = parent
    elif len(run) == 1:
        base = run[0].name
    else:
        last = [n.rpartition(".")[2] for n in names]
        base = f"{parent}.{last[0]}-{last[-1]}" if parent else f"{names[0]}-{names[-1]}"
    name, n = base, 1
    while name in taken or any(f"{name}.{r}" in taken for r in range(len(run))):
        n += 1
        name = f"{base}_{n}"
    return name


def _stage(run: list[Item], items: list[Item], taken: set[str]) -> "Stage | None":
    first = run[0].fields
    stage = Stage(_name(run, items, taken - {i.name for i in run}), run, first.get("stride", 1),
                  {k: v for k, v in first.items() if k != "stride"})
    return stage if stage.expands_exactly() and stage.repeats_further() else None


def stages(items: list[Item]) -> list:
    """Items and stages, in order; readers of a block inside a stage read it by its stage name."""
    out: list = []
    taken = {i.name for i in items}
    renamed: dict[str, str] = {}
    for run in _groups(items):
        if run[-1] is None:
            out.append(run[0])
            continue
        stage = _stage(run, items, taken)
        entries = [stage] if stage is not None else [_stage([i], items, taken) or i for i in run]
        for entry in entries:
            if isinstance(entry, Stage):
                taken = (taken - {i.name for i in entry.items}) | set(entry.names())
                renamed.update(zip((i.name for i in entry.items), entry.names()))
        out += entries
    for entry in out:
        for item in entry.items if isinstance(entry, Stage) else [entry]:
            item.inputs = [renamed.get(t, t) for t in item.inputs]
    return out
