"""Report data, apart from any formatting: rows (every block, or one per stage), totals, conditions.

``build_report(analysis, depth, columns)`` turns an ``Analysis`` into a ``Report`` that every format
renders. Depth 1 collapses each stage into one row; depth 2 (the default) lists every block.
Training-only blocks (auxiliary heads) get rows and a total of their own, outside the inference total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence, cast

from scalelab.analysis.costs import CONVENTION
from scalelab.blocks.registry import OPAQUE_KINDS
from scalelab.report.columns import Column, Conditions, Number, ReportContext, default_columns

if TYPE_CHECKING:  # pragma: no cover
    from scalelab.analysis import Analysis
    from scalelab.blocks.kinds.opaque import OpaqueBlock

DEPTH_STAGES = 1
DEPTH_BLOCKS = 2


@dataclass(frozen=True)
class Row:
    name: str  #: block name, or stage name for a collapsed stage
    kind: str  #: block kind, or 'bottleneck x3' for a collapsed stage
    out_shape: tuple  #: the output's shape, or a tuple of shapes for a block with several outputs
    values: dict[str, Optional[Number]]
    blocks: tuple[str, ...]  #: the blocks this row covers
    stage: Optional[str] = None
    training_only: bool = False


@dataclass(frozen=True)
class Report:
    spec: str
    description: str
    conditions: Conditions
    convention: str
    columns: tuple[Column, ...]
    depth: int
    rows: tuple[Row, ...]  #: inference rows, in execution order
    total: dict[str, Optional[Number]]  #: inference total
    training_rows: tuple[Row, ...] = ()
    training_total: dict[str, Optional[Number]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  #: network-level figures in words (inference peak, latency, ...)
    figures: dict = field(default_factory=dict)  #: the same figures as data, with units, for JSON
    mode: str = "infer"  #: infer, or train (training-memory columns): what the total row adds up
    extra_totals: tuple[tuple[str, dict], ...] = ()  #: rows after the total, e.g. the network timed whole


def _sum_values(columns: Sequence[Column], rows: Sequence[dict]) -> dict[str, Optional[Number]]:
    out: dict[str, Optional[Number]] = {}
    for col in columns:
        if col.share_of is not None:
            continue
        values = [r[col.key] for r in rows if r.get(col.key) is not None]
        out[col.key] = sum(values) if col.summed and values else None
    return out


def _fill_shares(columns: Sequence[Column], values: dict, totals: dict) -> dict:
    for col in columns:
        if col.share_of is not None:
            part, whole = values.get(col.share_of), totals.get(col.share_of)
            values[col.key] = None if part is None or not whole else 100.0 * part / whole
    return values


def _group(rows: list[Row], depth: int) -> list[list[Row]]:
    """Consecutive blocks of one stage form one group at depth 1; every block is its own group otherwise."""
    groups: list[list[Row]] = []
    for row in rows:
        if depth <= DEPTH_STAGES and row.stage is not None and groups and groups[-1][0].stage == row.stage:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def _collapse(columns: Sequence[Column], group: list[Row], depth: int) -> Row:
    if depth >= DEPTH_BLOCKS or group[0].stage is None:
        return group[0]
    kinds = sorted({r.kind for r in group})
    kind = f"{'/'.join(kinds)} x{len(group)}"
    return Row(group[0].stage or group[0].name, kind, group[-1].out_shape,
               _sum_values(columns, [r.values for r in group]),
               tuple(b for r in group for b in r.blocks), group[0].stage, group[0].training_only)


def build_report(
    analysis: "Analysis",
    depth: int = DEPTH_BLOCKS,
    columns: Optional[Sequence[Column]] = None,
    conditions: Optional[Conditions] = None,
    notes: Sequence[str] = (),
    figures: Optional[dict] = None,
    mode: str = "infer",
    extra_totals: Sequence[tuple[str, dict]] = (),
) -> Report:
    """The rows and totals of an analysis; ``columns`` defaults to ``default_columns()``;
    ``notes`` and ``figures`` carry network-level results (words, and data with units)."""
    columns = tuple(default_columns() if columns is None else columns)
    if conditions is None:
        _, height, width = analysis.input_shape  # (channels, height, width), as resolve() builds it
        conditions = Conditions((height, width), analysis.batch)
    ctx = ReportContext(analysis, conditions)
    blocks = analysis.network.blocks
    block_rows = [
        Row(b.name, b.kind, blocks[b.name].outputs or tuple(b.out_shape),
            {c.key: c.value(b, ctx) for c in columns if c.share_of is None and c.value is not None},
            (b.name,), b.stage, b.training_only)
        for b in analysis.blocks
    ]
    inference = [r for r in block_rows if not r.training_only]
    training = [r for r in block_rows if r.training_only]
    total = _sum_values(columns, [r.values for r in inference])
    training_total = _sum_values(columns, [r.values for r in training]) if training else {}

    def finish(rows: list[Row]) -> tuple[Row, ...]:
        collapsed = [_collapse(columns, g, depth) for g in _group(rows, depth)]
        return tuple(Row(r.name, r.kind, r.out_shape, _fill_shares(columns, dict(r.values), total),
                         r.blocks, r.stage, r.training_only) for r in collapsed)

    _fill_shares(columns, total, total)
    if training_total:
        _fill_shares(columns, training_total, total)
    spec = analysis.network.spec
    unknown = _opaque_notes(analysis)
    notes, figures = (*unknown, *notes), {**({"unknown_cost": unknown[0]} if unknown else {}), **(figures or {})}
    weight_ops = analysis.total.weight_ops
    if weight_ops:  # apart from the ops columns, which are per-sample work times the batch
        notes = (*notes, f"WEIGHT OPS: {weight_ops:,} ops on the weights alone (weight standardisation; Swin's "
                         "position bias gather and shifted-window mask), once per "
                         "forward pass whatever the batch, are not in the ops column or its total.")
        figures = {**figures, "weight_ops": weight_ops}
    weight_macs = analysis.total.weight_macs
    if weight_macs:  # in the MACs column and its total, once whatever the batch
        notes = (*notes, f"WEIGHT MACS: {weight_macs:,} of the MACs are on the weights alone (Swin V2's "
                         "position-bias MLP over its constant coordinates), once per forward pass whatever the batch.")
        figures = {**figures, "weight_macs": weight_macs}
    return Report(spec.name, spec.description, conditions, CONVENTION, columns, depth,
                  finish(inference), total, finish(training), training_total,
                  (*analysis.network.notes, *notes), {**_not_applicable(analysis), **(figures or {})}, mode,
                  tuple(extra_totals))


def _not_applicable(analysis: "Analysis") -> dict:
    """Training-only blocks left out at this resolution, as data for JSON (nothing when none is)."""
    skipped = analysis.network.not_applicable
    return {"not_applicable": [{"block": name, "reason": why} for name, why in skipped.items()]} if skipped else {}


def _opaque_notes(analysis: "Analysis") -> list[str]:
    """Blocks of unknown cost make every MAC and op total a lower bound: say so in every report."""
    opaque = [b.block for b in analysis.network.blocks.values() if b.kind in OPAQUE_KINDS]
    if not opaque:
        return []
    ops = sorted({cast("OpaqueBlock", block).op for block in opaque})  # every opaque kind's class is one
    return [f"UNKNOWN COST: {len(opaque)} opaque block(s) ({', '.join(ops)}) have unknown MACs and ops, counted "
            "as none: MAC and op totals are lower bounds (parameters and shapes are exact)."]
