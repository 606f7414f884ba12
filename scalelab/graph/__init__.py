"""Spec -> networkx DiGraph of resolved blocks, with shape propagation."""

from scalelab.graph.network import INPUT, Network, ResolvedBlock, resolve

__all__ = ["INPUT", "Network", "ResolvedBlock", "resolve"]
