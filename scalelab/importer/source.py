"""MODEL strings -> the ``nn.Module`` they name: ``package.module:callable`` or ``path/to/file.py:callable``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from scalelab.errors import ScalelabError


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


def load_model(ref: str):
    """Call the callable ``ref`` names with no arguments; return the ``nn.Module`` in eval mode."""
    from torch import nn

    where, sep, attr = ref.rpartition(":")
    if not sep or not where or not attr:
        raise ScalelabError(f"'{ref}': a model is named module.path:callable or path/to/file.py:callable")
    owner = _load_file(Path(where), ref) if where.endswith(".py") else _load_module(where, ref)
    factory = owner
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ScalelabError(f"{ref}: '{where}' has no attribute '{attr}'")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ScalelabError(f"{ref}: '{attr}' is not callable")
    try:
        model = factory()
    except Exception as exc:
        raise ScalelabError(f"{ref}: calling {attr}() failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ScalelabError(f"{ref}: {attr}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()
