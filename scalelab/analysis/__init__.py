"""Costs from the resolved graph: parameters, MACs, other ops, activations (memory and latency build on these).

The names below load on first use (PEP 562): a light submodule such as ``scalelab.analysis.noise``
can be imported (by a command's option defaults) without the block models and the graph.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    from scalelab.analysis.costs import CONVENTION, Analysis, BlockCost, Cost, analyze

__all__ = ["CONVENTION", "Analysis", "BlockCost", "Cost", "analyze"]


def __getattr__(name: str) -> object:
    if name in __all__:
        value = getattr(import_module("scalelab.analysis.costs"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scalelab.analysis' has no attribute {name!r}")
