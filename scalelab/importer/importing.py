"""Importing a module: capture, map, fold, then check the spec against the module (shapes, params)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scalelab.analysis import analyze
from scalelab.errors import ScalelabError
from scalelab.importer.capture import Captured, capture, torch_warnings
from scalelab.importer.emit import block_names, blocks_yaml, spec_blocks
from scalelab.importer.fold import fold_spec, same_figures
from scalelab.importer.heads import head_inputs, never_run
from scalelab.importer.mapping import Mapped, map_graph
from scalelab.importer.source import load_model, model_code
from scalelab.importer.state_keys import state_keys
from scalelab.importer.table import known
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
    opaque: list = field(default_factory=list)  # (operator, count, places, why) kept as opaque blocks
    #: the source state-dict key of each entry of ``build_module(spec).state_dict()``, in order (None: the
    #: source has none); empty when the spec holds opaque blocks, which build no module
    state_keys: tuple = ()
    #: what torch or the module warned while it was built and captured that says something (capture.torch_warnings)
    notes: list[str] = field(default_factory=list)


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


def _heads(cap: Captured, drafts, names, heads: dict[str, int], ref: str) -> tuple[list, dict, list, dict]:
    """Training-only blocks for each head that can be placed and stated exactly, with their shapes
    and state; the heads left over (reported in the description only) with their parameters."""
    produced = {d.node: n for d, n in zip(drafts, names)}
    blocks, shapes, held, left = [], {}, [], dict(heads)
    for head, node in head_inputs(cap, heads).items():
        if node not in produced:
            continue
        module = cap.root.get_submodule(head)
        try:
            sub = capture(module, cap.shape_of(node), f"{ref}: {head}", known)  # type: ignore[arg-type]  # a tensor
        except ScalelabError:
            continue
        mapped = map_graph(sub)
        if mapped.problems:
            continue
        sub_names = [f"{head}.{n}" for n in block_names(mapped.drafts, sub)]
        more, more_shapes, more_held = spec_blocks(mapped.drafts, sub_names, sub, entry=produced[node], training_only=True)
        blocks += more
        shapes.update(more_shapes)
        held += [(n, [f"{head}.{k}" for k in s]) for n, s in more_held]
        del left[head]
    return blocks, shapes, held, left


def _description(ref: str, input_shape, mapped: Mapped, training_only: dict, left: dict) -> str:
    text = (f"Imported from {ref} by capturing it with torch.export in eval mode at "
            f"{'x'.join(map(str, input_shape))}; block names are the module's qualified names.")
    if mapped.problems:
        text += (f" {len(mapped.problems)} operation(s) no block states are opaque blocks of unknown cost: "
                 + ", ".join(f"{label} x{count}" for label, count, _, _ in mapped.unsupported_summary()) + ".")
    if training_only:
        text += (" Modules that never run in eval mode are training-only: "
                 + ", ".join(f"{k} ({v:,} parameters{', not in this spec' if k in left else ''})"
                             for k, v in training_only.items()) + ".")
    return text


def import_module(model, input_shape: tuple[int, int, int] = (3, 224, 224), name: str = "imported",
                  ref: "str | None" = None, allow_unsupported: bool = False, fold: bool = True) -> Imported:
    """Import an ``nn.Module`` (captured at a batch of ``input_shape`` inputs) as a spec. Operators
    no block states are refused, or with ``allow_unsupported`` kept as opaque blocks of unknown cost.
    ``fold``: regions the zoo's block kinds state exactly become those blocks, like blocks stages.
    Torch's warnings are kept from stderr; those that say something are the import's ``notes``."""
    ref = ref or name
    with torch_warnings(ref) as notes:
        imported = _import(model, input_shape, name, ref, allow_unsupported, fold)
    imported.notes[:0] = notes
    return imported


def _import(model, input_shape: tuple[int, int, int], name: str, ref: str, allow_unsupported: bool,
            fold: bool) -> Imported:
    cap = capture(model, input_shape, ref, known)
    mapped = map_graph(cap)
    if mapped.problems and not allow_unsupported:
        raise ScalelabError(_unsupported_message(ref, mapped))
    names = block_names(mapped.drafts, cap)
    blocks, shapes, held = spec_blocks(mapped.drafts, names, cap)
    if not blocks:  # views and copies of the input map to no block: no spec states an empty network
        raise ScalelabError(f"{ref}: its forward only reshapes or copies its input, computing nothing: "
                            f"there is nothing to import")
    training_only, left = never_run(cap), dict[str, int]()
    if training_only:
        more, more_shapes, more_held, left = _heads(cap, mapped.drafts, names, training_only, ref)
        blocks, shapes, held = blocks + more, {**shapes, **more_shapes}, held + more_held
    total = sum(p.numel() for p in model.parameters())
    c, h, w = input_shape
    head: dict[str, Any] = {"name": name, "description": _description(ref, input_shape, mapped, training_only, left),
            "input": {"channels": c, "resolution": h if h == w else [h, w]}}
    text = blocks_yaml(head, blocks)
    spec = parse_spec(text, f"<{ref}>")  # exactly what reading the written file gives
    _check(spec, shapes, total - sum(left.values()), ref)
    if fold and not mapped.problems:
        blocks, shapes, held = fold_spec(spec, blocks, shapes, held)
        head["description"] += " Regions a block kind states exactly are folded into it, like blocks into stages."
        text = blocks_yaml(head, blocks)
        spec = same_figures(spec, parse_spec(text, f"<{ref}>"), ref)
        _check(spec, shapes, total - sum(left.values()), ref)
    keys = () if mapped.problems or left else state_keys(spec, held, model, ref)
    return Imported(spec, text, shapes, total, training_only, tuple(left), mapped.unsupported_summary(), keys)


def import_model(ref: str, input_shape: tuple[int, int, int] = (3, 224, 224),
                 allow_unsupported: bool = False) -> Imported:
    """Import the module a MODEL string (``package.module:callable``, ``file.py:callable``) names."""
    with model_code(ref), torch_warnings(ref) as notes:
        model = load_model(ref)
        name = ref.rpartition(":")[2].rpartition(".")[2]
        imported = import_module(model, input_shape, name=name, ref=ref, allow_unsupported=allow_unsupported)
    imported.notes[:0] = notes
    return imported
