"""Compound scaling of specs (rounding rules, the transform, the EfficientNet family) and the
accuracy estimators the search ranks candidates with.

The names below load on first use (PEP 562): a light submodule such as ``scalelab.scaling.storages``
can be imported (by a command's option defaults) without the spec models and the graph.
"""

from importlib import import_module

_HOMES = {
    "compound_coefficients": "compound", "scale_compound": "compound", "scale_spec": "compound",
    "round_channels": "rounding", "round_repeats": "rounding", "round_resolution": "rounding",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(import_module(f"scalelab.scaling.{_HOMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scalelab.scaling' has no attribute {name!r}")
