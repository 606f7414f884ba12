"""An operation of unknown cost on two or more inputs (``opaque`` with ``from:``), written by
``scalelab import --allow-unsupported``."""

from typing import Literal

from scalelab.blocks.kinds.opaque import OpaqueBlock


class OpaqueMergeBlock(OpaqueBlock):
    summary = "an operation of unknown cost on two or more inputs (name them with from:)"
    arity = None
    kind: Literal["opaque_merge"] = "opaque_merge"  # type: ignore[assignment]  # its own tag in AnyBlock's union

