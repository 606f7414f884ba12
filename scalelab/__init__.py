"""scalelab: per-block cost analysis and compound scaling of convolutional networks from YAML specs."""

__version__ = "0.1.0"

#: the public API, imported on first use (PEP 562), so that `import scalelab` (and every command's
#: start-up) stays instant
_API = {"Analysis": "scalelab.analysis", "analyze": "scalelab.analysis", "ScalelabError": "scalelab.errors",
        "Spec": "scalelab.spec", "load_spec": "scalelab.spec", "parse_spec": "scalelab.spec"}


def __getattr__(name: str):
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scalelab' has no attribute '{name}'")


def build_module(spec, resolution=None):
    """Build the ``torch.nn.Module`` of a spec (imports torch; the analysis path never does)."""
    from scalelab.build import build_module as _build

    return _build(spec, resolution)


__all__ = ["Analysis", "ScalelabError", "Spec", "analyze", "build_module", "load_spec", "parse_spec"]
