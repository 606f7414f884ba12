"""``scalelab import``: a PyTorch module -> a spec whose analysis equals the module.

The module is captured with torch.export in eval mode, every node is mapped to spec blocks through one
table (``scalelab.importer.table``), the usual patterns are folded (``mapping``), and the spec is
checked against the module before it is returned (``importing``): every block's output shape and
the parameter count. torch is imported only here, never on the analysis path. Names load on first
use, so that ``analyze`` can tell a MODEL string from a spec (``source.is_model_ref``) cheaply.
"""

from __future__ import annotations

from importlib import import_module as _import

_WHERE = {"Imported": "importing", "import_model": "importing", "import_module": "importing",
          "is_model_ref": "source", "load_model": "source"}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'scalelab.importer' has no attribute {name!r}")
    return getattr(_import(f"scalelab.importer.{_WHERE[name]}"), name)
