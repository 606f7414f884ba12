"""scalelab: per-block cost analysis and compound scaling of convolutional networks from YAML specs.

The names below load on first use (PEP 562), so that `scalelab --help` and the commands that do
not analyse a network never import the analysis stack (pydantic, the block kinds, networkx).
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "Analysis": "scalelab.analysis",
    "analyze": "scalelab.api",  # a spec, or a torch module imported first
    "ScalelabError": "scalelab.errors",
    "Spec": "scalelab.spec",
    "load_spec": "scalelab.spec",
    "parse_spec": "scalelab.spec",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'scalelab' has no attribute {name!r}")


def build_module(spec, resolution=None):
    """Build the ``torch.nn.Module`` of a spec (imports torch; the analysis path never does)."""
    from scalelab.build import build_module as _build  # torch: only when a module is built

    return _build(spec, resolution)


__all__ = ["Analysis", "ScalelabError", "Spec", "analyze", "build_module", "load_spec", "parse_spec"]
