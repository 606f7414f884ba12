"""scalelab: per-block cost analysis and compound scaling of convolutional networks from YAML specs."""

from scalelab.analysis import Analysis, analyze
from scalelab.errors import ScalelabError
from scalelab.spec import Spec, load_spec, parse_spec

__version__ = "0.1.0"


def build_module(spec, resolution=None):
    """Build the ``torch.nn.Module`` of a spec (imports torch; the analysis path never does)."""
    from scalelab.build import build_module as _build

    return _build(spec, resolution)


__all__ = ["Analysis", "ScalelabError", "Spec", "analyze", "build_module", "load_spec", "parse_spec"]
