"""Block kinds, one module each, and the registry (``scalelab.blocks.registry``) that maps a spec's
``kind`` to its model. Names load on first use, so that importing the layer definitions
(``scalelab.blocks.layers``) builds no block model."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scalelab.blocks.base import Block
    from scalelab.blocks.registry import KINDS, AnyBlock

__all__ = ["AnyBlock", "Block", "KINDS"]


def __getattr__(name: str) -> object:
    if name == "Block":
        from scalelab.blocks.base import Block  # PEP 562: importing the layers builds no block model

        return Block
    if name in ("AnyBlock", "KINDS"):
        from scalelab.blocks import registry  # PEP 562: importing the layers builds no block model

        return getattr(registry, name)
    raise AttributeError(f"module 'scalelab.blocks' has no attribute {name!r}")
