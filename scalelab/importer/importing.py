"""Importing a module: trace, map, fold, then check the spec against the module (shapes, params)."""

from __future__ import annotations

from dataclasses import dataclass, field

from scalelab.analysis import analyze
from scalelab.errors import ScalelabError
from scalelab.importer.emit import block_names, blocks_yaml, spec_blocks
from scalelab.importer.heads import head_blocks, never_run
from scalelab.importer.mapping import Mapped, map_graph
from scalelab.importer.source import load_model, model_code
from scalelab.importer.trace import trace
from scalelab.spec import Spec, parse_spec


@dataclass
class Imported:
    """A spec imported from a module, with what the module says to check it against."""

    spec: Spec
    text: str  # the spec as YAML
    shapes: dict[str, tuple]  # the module's output shape of every block, per sample
    module_params: int  # sum(p.numel()) over the whole module
    training_only: dict[str, int] = field(default_factory=dict)  # modules that never run in eval -> params
    left_out: tuple[str, ...] = ()  # of those, the ones not imported as training-only blocks
    opaque: list = field(default_factory=list)  # (operation, count, places, why) kept as opaque blocks


def _unsupported_message(ref: str, mapped: Mapped) -> str:
    lines = [f"{ref}: {len(mapped.problems)} operation(s) cannot be stated as spec blocks, so their cost is unknown:"]
    for label, count, places, detail in mapped.unsupported_summary():
        shown = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
        lines.append(f"  {label} x{count} ({detail}) at {shown}")
    lines.append("nothing was imported; --allow-unsupported imports them as opaque blocks of unknown cost")
    return "\n".join(lines)


def _check(spec: Spec, shapes: dict[str, tuple], params: int, ref: str) -> None:
    """The spec must reproduce the module: every block's shape and the parameter count (inference
    and training-only blocks together)."""
    analysis = analyze(spec)
    for block in analysis.blocks:
        expected = shapes.get(block.name)
        if expected is not None and tuple(block.out_shape) != expected:
            raise ScalelabError(f"{ref}: block '{block.name}' gives {block.out_shape} but the module gives "
                                f"{expected}; the import is not exact, please report this module")
    counted = analysis.total.params + analysis.training_only_total.params
    if counted != params:
        raise ScalelabError(f"{ref}: the spec counts {counted:,} parameters, the module "
                            f"{params:,}; the import is not exact, please report this module")


def import_module(model, input_shape: tuple[int, int, int] = (3, 224, 224), name: str = "imported",
                  ref: "str | None" = None, allow_unsupported: bool = False) -> Imported:
    """Import an ``nn.Module`` (traced at a batch-1 input of ``input_shape``) as a spec. Operations
    no block states are refused, or with ``allow_unsupported`` kept as opaque blocks of unknown cost."""
    ref = ref or name
    traced = trace(model, input_shape, ref)
    mapped = map_graph(traced)
    if mapped.problems and not allow_unsupported:
        raise ScalelabError(_unsupported_message(ref, mapped))
    names = block_names(mapped.drafts, traced)
    blocks, shapes = spec_blocks(mapped.drafts, names)
    training_only, left = never_run(traced), dict[str, int]()
    if training_only:
        produced = {d.node: n for d, n in zip(mapped.drafts, names)}
        more, more_shapes, left = head_blocks(traced, produced, training_only, ref)
        blocks, shapes = blocks + more, {**shapes, **more_shapes}
    total = sum(p.numel() for p in model.parameters())
    description = (f"Imported from {ref} by tracing it with torch.fx in eval mode at "
                   f"{'x'.join(map(str, input_shape))}; block names are the module's qualified names.")
    if mapped.problems:
        description += (f" {len(mapped.problems)} operation(s) no block states are opaque blocks of unknown cost: "
                        + ", ".join(f"{label} x{count}" for label, count, _, _ in mapped.unsupported_summary()) + ".")
    if training_only:
        description += (" Modules that never run in eval mode are training-only: "
                        + ", ".join(f"{k} ({v:,} parameters{', not in this spec' if k in left else ''})"
                                    for k, v in training_only.items()) + ".")
    c, h, w = input_shape
    head = {"name": name, "description": description, "input": {"channels": c, "resolution": h if h == w else [h, w]}}
    text = blocks_yaml(head, blocks)
    spec = parse_spec(text, f"<{ref}>")  # exactly what reading the written file gives
    _check(spec, shapes, total - sum(left.values()), ref)
    return Imported(spec, text, shapes, total, training_only, tuple(left), mapped.unsupported_summary())


def import_model(ref: str, input_shape: tuple[int, int, int] = (3, 224, 224),
                 allow_unsupported: bool = False) -> Imported:
    """Import the module a MODEL string (``package.module:callable`` or ``file.py:callable``) names."""
    with model_code(ref):
        model = load_model(ref)
        name = ref.rpartition(":")[2].rpartition(".")[2]
        return import_module(model, input_shape, name=name, ref=ref, allow_unsupported=allow_unsupported)

