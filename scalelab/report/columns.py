"""The report's per-block columns: the one place to add a figure to every output format.

A ``Column`` names a figure once (JSON/CSV key, table header, unit, human formatter) and says how
to compute it for one block. Every format (terminal table, Markdown, JSON, CSV, HTML) iterates the
same column list, so a new figure is one ``Column`` in the list given to ``build_report``.

Extension point (memory, latency, training memory)::

    from scalelab.report import Column, build_report, default_columns, human_bytes

    weight_bytes = Column("weight_bytes", "Weights", "bytes",
                          lambda block, ctx: block.cost.params * ctx.bytes_per_element, human_bytes)
    report = build_report(analysis, columns=[*default_columns(), weight_bytes])

``value(block, ctx)`` receives the ``BlockCost`` and the ``ReportContext`` (the analysis, its network
with each block's layer tree, and the conditions); it returns an exact number or ``None`` (not
applicable). Collapsed stage rows and totals sum a column (``summed=True``); a column that does not
add up (a peak, a ratio) sets ``summed=False`` and shows '-' there. A ``share_of`` column is the
percentage of another column's inference total, recomputed for every row, collapsed or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from scalelab.report.units import human_bytes, human_count, human_percent

if TYPE_CHECKING:  # pragma: no cover
    from scalelab.analysis import Analysis, BlockCost

Number = Union[int, float]


@dataclass(frozen=True)
class Conditions:
    """What the figures depend on; every format states them."""

    resolution: tuple[int, int]
    batch: int
    dtype: str = "fp32"
    bytes_per_element: int = 4

    def describe(self) -> str:
        h, w = self.resolution
        return (f"input {h}x{w}, batch {self.batch}, bytes at {self.dtype} "
                f"({self.bytes_per_element} bytes per element)")

    def as_dict(self) -> dict[str, Any]:
        return {"resolution": list(self.resolution), "batch": self.batch, "dtype": self.dtype,
                "bytes_per_element": self.bytes_per_element}


@dataclass(frozen=True)
class ReportContext:
    analysis: "Analysis"
    conditions: Conditions


@dataclass(frozen=True)
class Column:
    key: str  #: JSON/CSV key
    header: str  #: terminal/Markdown header
    unit: str  #: what the number counts, stated in every format
    value: Optional[Callable[["BlockCost", ReportContext], Optional[Number]]] = None
    human: Callable[[Optional[Number]], str] = human_count
    summed: bool = True  #: whether stage rows and totals add it up
    share_of: Optional[str] = None  #: percentage of this column's inference total instead of ``value``


def default_columns() -> list[Column]:
    """Parameters, MACs and their share, other ops, activation elements and bytes."""
    return [
        Column("params", "Params", "parameters", lambda b, ctx: b.cost.params),
        Column("macs", "MACs", "multiply-accumulates", lambda b, ctx: b.cost.macs),
        Column("macs_percent", "% MACs", "percent of inference MACs", human=human_percent, share_of="macs"),
        Column("other_ops", "Other ops", "operations (norm, activation, pool, add, gating, copy)",
               lambda b, ctx: b.cost.ops),
        Column("activation_elements", "Activations", "output elements", lambda b, ctx: b.cost.activations),
        Column("activation_bytes", "Act. bytes", "bytes of output activations",
               lambda b, ctx: b.cost.activations * ctx.conditions.bytes_per_element, human_bytes),
    ]
