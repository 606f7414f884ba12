"""``scalelab.analyze``: the analysis of a spec or of a torch module, and the import of a MODEL string
that ``scalelab import`` and ``scalelab analyze`` share.

A module is imported first (``scalelab.importer``, which imports torch); a spec never is, so analysing
one imports no torch. Whether an object is a module is asked of ``torch.nn`` only if torch is already
loaded: an object cannot be an ``nn.Module`` before it is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from scalelab.analysis.costs import Analysis
from scalelab.analysis.costs import analyze as analyze_spec
from scalelab.graph import Network
from scalelab.errors import ScalelabError
from scalelab.importer.source import DEFAULT_INPUT, load_model, model_code, model_input, stated_input
from scalelab.spec import Spec

if TYPE_CHECKING:
    from torch import nn

    from scalelab.importer.importing import Imported


def is_module(model: object) -> "TypeGuard[nn.Module]":
    """Whether ``model`` is a ``torch.nn.Module`` (without importing torch when it is not loaded)."""
    nn = sys.modules.get("torch.nn")
    return nn is not None and isinstance(model, nn.Module)


def _module_name(model: Any) -> str:
    """The imported spec's name: timm's architecture name, else the module's class name."""
    cfg = getattr(model, "pretrained_cfg", None)
    architecture = cfg.get("architecture") if isinstance(cfg, dict) else None
    return architecture if isinstance(architecture, str) and architecture else type(model).__name__


def analyze(
    model: "Spec | Network | str | Path | Any",
    resolution: "int | tuple[int, int] | None" = None,
    batch: int = 1,
    input_shape: "tuple[int, int, int] | None" = None,
) -> Analysis:
    """The cost of every block of a network, at a resolution and batch.

    ``model`` is a spec (a ``Spec``, a spec file's path or a zoo name) or a ``torch.nn.Module``. A
    module is imported as ``scalelab import`` does (captured in eval mode, each block checked against
    it; its training mode is restored afterwards) at the per-sample input ``input_shape``
    ``(channels, height, width)``, or when that is not given, at the size timm's models state in
    ``pretrained_cfg["input_size"]``; any other module needs ``input_shape``. ``resolution`` (224 or
    (height, width)) overrides the spec's input size, or the module's height and width; ``batch``
    scales MACs, ops and activations. Errors are ``ScalelabError``.
    """
    if is_module(model):
        return _analyze_module(model, resolution, batch, input_shape)
    if input_shape is not None:
        raise ScalelabError("input_shape applies to a torch module; a spec states its input (resolution "
                            "overrides its size)")
    return analyze_spec(model, resolution, batch)


def _analyze_module(model: "nn.Module", resolution: "int | tuple[int, int] | None", batch: int,
                    input_shape: "tuple[int, int, int] | None") -> Analysis:
    from scalelab.importer import import_module  # torch: a module is being imported

    shape = model_input(model, input_shape, resolution, default=None)
    name = _module_name(model)
    training = model.training
    try:
        imported = import_module(model, shape, name=name, ref=name)
    finally:
        model.train(training)
    return analyze_spec(imported.spec, batch=batch)


def import_ref(ref: str, input_shape: "tuple[int, int, int] | None" = None,
               resolution: "tuple[int, int] | None" = None, allow_unsupported: bool = False,
               fold: bool = True) -> "tuple[Imported, tuple[int, int, int], str]":
    """Import the module a MODEL string names (``timm:NAME``, ``package.module:callable``,
    ``file.py:callable``) at ``input_shape``, else the size the model states, else 3x224x224, with
    ``resolution`` replacing height and width. Returns the import, the input it was imported at and
    where that input came from, in words. ``fold``: into the zoo's block kinds and stages."""
    from scalelab.importer import import_module  # torch: the module is built and captured
    from scalelab.importer.capture import torch_warnings

    with model_code(ref), torch_warnings(ref) as notes:  # building it warns as capturing it does
        model = load_model(ref)
        shape = model_input(model, input_shape, resolution, default=DEFAULT_INPUT)
        origin = _input_origin(model, input_shape, resolution)
        name = ref.rpartition(":")[2].rpartition(".")[2]
        imported = import_module(model, shape, name=name, ref=ref, allow_unsupported=allow_unsupported, fold=fold)
    imported.notes[:0] = notes
    return imported, shape, origin


def _input_origin(model: Any, input_shape: "tuple[int, int, int] | None",
                  resolution: "tuple[int, int] | None") -> str:
    if input_shape is not None:
        return "the input asked for"
    stated = stated_input(model) is not None
    if resolution is not None:
        return "the resolution asked for" + (", channels from the model's pretrained_cfg" if stated else "")
    return "the model's pretrained_cfg input_size" if stated else "the default input"
