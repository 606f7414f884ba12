"""MODEL strings -> the ``nn.Module`` they name: ``package.module:callable``, ``path/to/file.py:callable``
or ``timm:NAME`` (``timm.create_model(NAME, pretrained=False)``), and the input a module is imported at."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from scalelab.errors import ScalelabError

#: the input of a module that states none (timm models state theirs in ``pretrained_cfg``)
DEFAULT_INPUT = (3, 224, 224)


def is_model_ref(text: str) -> bool:
    """Whether a command argument names a PyTorch model (``module:callable``) rather than a spec."""
    return ":" in text and not Path(text).is_file()


@contextmanager
def model_code(ref: str) -> Iterator[None]:
    """Run the user's model code: a ``sys.exit()`` in it (while it is imported, called or traced) is
    an error of that code, whatever its status, never the exit of scalelab (exit 0 having written
    nothing would read as success)."""
    try:
        yield
    except SystemExit as exc:
        raise ScalelabError(f"{ref}: the model's code called sys.exit({exc.code!r}); a model callable must return "
                            f"a torch.nn.Module, not exit") from None


def _load_file(path: Path, ref: str):
    if not path.is_file():
        raise ScalelabError(f"{ref}: no such file '{path}'")
    name = f"_scalelab_import_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScalelabError(f"{ref}: '{path}' is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file failed; say where, not a traceback
        raise ScalelabError(f"{ref}: running '{path}' failed: {type(exc).__name__}: {exc}") from None
    return module


def _load_module(dotted: str, ref: str):
    try:
        return importlib.import_module(dotted)
    except ImportError as exc:
        raise ScalelabError(f"{ref}: cannot import '{dotted}': {exc}") from None
    except Exception as exc:
        raise ScalelabError(f"{ref}: importing '{dotted}' failed: {type(exc).__name__}: {exc}") from None


def _timm_model(name: str, ref: str):
    """``timm:NAME``: the model timm's registry builds under NAME, without pretrained weights."""
    try:
        import timm  # only for timm:NAME; timm imports torch
    except ImportError:
        raise ScalelabError(f"{ref}: timm is not installed; install it with `pip install timm`, or name the model "
                            f"as package.module:callable") from None
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ScalelabError(f"{ref}: timm has no model '{name}'{hint} (`timm.list_models()` lists them all)")
    try:
        return timm.create_model(name, pretrained=False)
    except Exception as exc:  # the model's own code failed; say where, not a traceback
        raise ScalelabError(f"{ref}: timm.create_model('{name}') failed: {type(exc).__name__}: {exc}") from None


def _call_factory(ref: str, where: str, attr: str):
    """The object ``where:attr`` returns when called with no arguments."""
    owner = _load_file(Path(where), ref) if where.endswith(".py") else _load_module(where, ref)
    factory = owner
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ScalelabError(f"{ref}: '{where}' has no attribute '{attr}'")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ScalelabError(f"{ref}: '{attr}' is not callable")
    try:
        return factory()
    except Exception as exc:
        raise ScalelabError(f"{ref}: calling {attr}() failed: {type(exc).__name__}: {exc}") from None


def load_model(ref: str):
    """The ``nn.Module`` ``ref`` names, in eval mode: ``timm:NAME`` built by timm, otherwise the
    callable ``ref`` names called with no arguments."""
    from torch import nn  # the importer's path only; analysing a spec never imports torch

    where, sep, attr = ref.rpartition(":")
    if not sep or not where or not attr:
        raise ScalelabError(f"'{ref}': a model is named module.path:callable, path/to/file.py:callable or timm:NAME")
    model = _timm_model(attr, ref) if where == "timm" else _call_factory(ref, where, attr)
    if not isinstance(model, nn.Module):
        raise ScalelabError(f"{ref}: {attr}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def stated_input(model) -> "tuple[int, int, int] | None":
    """The input size a model states for itself: timm's ``pretrained_cfg["input_size"]``
    (mobilevit_xxs 3x256x256, nfnet_f0 3x192x192), or None."""
    cfg = getattr(model, "pretrained_cfg", None)
    size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if isinstance(size, (tuple, list)) and len(size) == 3 and all(isinstance(d, int) and d > 0 for d in size):
        return (size[0], size[1], size[2])
    return None


def model_input(model, input_shape: "tuple[int, int, int] | None" = None,
                resolution: "int | tuple[int, int] | None" = None,
                default: "tuple[int, int, int] | None" = DEFAULT_INPUT) -> tuple[int, int, int]:
    """(channels, height, width) a module is imported at: ``input_shape`` if given, else the size the
    model states (``stated_input``), else ``default``; ``resolution`` (224 or (height, width))
    replaces the height and width, as it replaces a spec's."""
    shape = input_shape or stated_input(model) or default
    if shape is None:
        raise ScalelabError(f"{type(model).__name__}: give the input as input_shape=(channels, height, width); "
                            f"this module does not state one (timm models do, in pretrained_cfg)")
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ScalelabError(f"input_shape: expected (channels, height, width) of positive integers, got {shape!r}")
    if resolution is not None:
        h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
        return (shape[0], h, w)
    return (shape[0], shape[1], shape[2])
