"""Folding an exact flat import into the zoo's block kinds and stages (``fold_spec``): regions of
primitive blocks under one module prefix become one block where a kind states their layers
exactly, and runs of like blocks become stages. torch only where a layer's state is counted."""

from scalelab.importer.fold.pipeline import fold_spec, same_figures

__all__ = ["fold_spec", "same_figures"]
