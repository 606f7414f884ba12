"""Stages as the zoo writes them: consecutive folded blocks of one kind with the same settings,
under one parent module, become ``{stage, repeat, stride, block}``; the first repeat takes the
stride and the channel change (``scalelab.graph`` expands a stage the same way), so the stage
expands to exactly the blocks it replaces."""

from __future__ import annotations

from dataclasses import dataclass

from scalelab.importer.fold.items import Item

#: the kinds a stage repeats (a folded block that takes a stride of its own)
STAGE_KINDS = ("residual", "bottleneck", "mbconv", "fused_mbconv", "wrap")


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


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _key(item: Item) -> "tuple[int, dict] | None":
    """(stride, the settings without it) of a block a stage may repeat."""
    if not item.folded or item.kind not in STAGE_KINDS or item.training_only:
        return None
    stride = item.fields.get("stride", 1)
    return (stride, {k: v for k, v in item.fields.items() if k != "stride"}) if isinstance(stride, int) else None


def _groups(items: list[Item]) -> list[list[Item]]:
    """Runs of like blocks, each reading the one before it; every other item a run of its own."""
    runs: list[list[Item]] = []
    for i, item in enumerate(items):
        key = _key(item)
        previous = items[i - 1].name if i else "input"
        if runs and runs[-1][-1] is not None and key is not None and key[0] == 1 and item.inputs == [runs[-1][-1].name]:
            head = _key(runs[-1][0])
            if head is not None and head[1] == key[1] and _parent(item.name) == _parent(runs[-1][0].name):
                runs[-1].append(item)
                continue
        runs.append([item] if key is not None and item.inputs == [previous] else [item, None])  # type: ignore[list-item]
    return runs


def _name(run: list[Item], items: list[Item], taken: set[str]) -> str:
    """The common module prefix when the run is all of that module's blocks, else the parent and the
    range of indices (``features.2-3``), else the first and last names."""
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


def stages(items: list[Item]) -> list:
    """Items and stages, in order; readers of a block inside a stage read it by its stage name."""
    out: list = []
    taken = {i.name for i in items}
    renamed: dict[str, str] = {}
    for run in _groups(items):
        if run[-1] is None:
            out.append(run[0])
            continue
        taken -= {i.name for i in run}
        name = _name(run, items, taken)
        stride, block = _key(run[0])  # type: ignore[misc]  # a run holds stage kinds only
        stage = Stage(name, run, stride, block)
        renamed.update(zip((i.name for i in run), stage.names()))
        taken |= set(stage.names())
        out.append(stage)
    for entry in out:
        for item in entry.items if isinstance(entry, Stage) else [entry]:
            item.inputs = [renamed.get(t, t) for t in item.inputs]
    return out
