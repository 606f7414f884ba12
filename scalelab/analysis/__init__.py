"""Costs from the resolved graph: parameters, MACs, other ops, activations (memory and latency build on these)."""

from scalelab.analysis.costs import CONVENTION, Analysis, BlockCost, Cost, analyze

__all__ = ["CONVENTION", "Analysis", "BlockCost", "Cost", "analyze"]
