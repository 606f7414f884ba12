"""Rendering a ``Report``: Markdown, JSON and CSV here; the terminal table in ``table``, HTML in ``html``
(what all of them share is in ``layout``).

Tables show human units (25.6M, 4.09G); JSON and CSV carry the exact integers. Every format states
the spec and the conditions (resolution, batch, dtype); JSON, Markdown and HTML also the counting
convention and each column's unit (the terminal table on ``--explain-units``).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Optional

from scalelab.report.html import to_html
from scalelab.report.layout import (FIXED_HEADERS, TRAINING_TOTAL, cells, notes, title, total_cells, total_label,
                                    total_rows, training_caption)
from scalelab.report.rows import Report, Row
from scalelab.report.table import to_table
from scalelab.report.units import human_shape

FORMATS = ("table", "markdown", "json", "csv", "html")

# --------------------------------------------------------------------------------------------------
# Markdown


def _md_row(texts: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in texts) + " |"


def _md_table(report: Report, rows: tuple[Row, ...], totals: list[tuple[str, dict]]) -> list[str]:
    headers = [*FIXED_HEADERS, *(c.header for c in report.columns)]
    lines = [_md_row(headers), "|" + "|".join([":---"] * len(FIXED_HEADERS) + ["---:"] * len(report.columns)) + "|"]
    lines += [_md_row(cells(report, r)) for r in rows]
    for label, values in totals:
        lines.append(_md_row([f"**{c}**" if c else "" for c in total_cells(report, label, values)]))
    return lines


def to_markdown(report: Report) -> str:
    lines = [f"# {title(report)}", ""]
    if report.description:
        lines += [report.description.strip(), ""]
    lines += _md_table(report, report.rows, total_rows(report))
    if report.training_rows:
        lines += ["", f"## {training_caption(report)}", ""]
        lines += _md_table(report, report.training_rows, [(TRAINING_TOTAL, report.training_total)])
    lines += [""] + [f"- {note}" for note in notes(report)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# JSON and CSV (exact numbers)


def _exact(value):
    """Integers stay exact; shares (floats) keep six decimals."""
    if value is None:
        return None
    return round(value, 6) if isinstance(value, float) else value


def _json_row(report: Report, row: Row) -> dict:
    out = {"name": row.name, "kind": row.kind, "stage": row.stage, "out_shape": list(row.out_shape),
           "training_only": row.training_only, "blocks": list(row.blocks)}
    out.update({c.key: _exact(row.values.get(c.key)) for c in report.columns})
    return out


def _json_total(report: Report, values: dict) -> dict:
    return {c.key: _exact(values.get(c.key)) for c in report.columns}


def report_dict(report: Report) -> dict:
    """The report as plain data (what ``--format json`` prints)."""
    return {
        "spec": report.spec,
        "conditions": report.conditions.as_dict(),
        "convention": report.convention,
        "units": {c.key: c.unit for c in report.columns},
        "depth": report.depth,
        "rows": [_json_row(report, r) for r in report.rows],
        "total_label": total_label(report),
        "total": _json_total(report, report.total),
        "extra_totals": [{"label": label, **{c.key: _exact(values[c.key]) for c in report.columns if c.key in values}}
                         for label, values in report.extra_totals],
        "training_only_rows": [_json_row(report, r) for r in report.training_rows],
        "training_only_total": _json_total(report, report.training_total) if report.training_rows else None,
        **report.figures,
    }


def to_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, allow_nan=False) + "\n"


CSV_FIXED = ("row", "name", "kind", "stage", "out_shape", "training_only")
CSV_CONDITIONS = ("spec", "input", "batch", "dtype")


def to_csv(report: Report) -> str:
    """One header row, then one row per block (or stage) and the totals. Each row repeats the
    conditions (spec, input HxW, batch, dtype); the convention and units are in --format json."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(CSV_FIXED) + [c.key for c in report.columns] + list(CSV_CONDITIONS))
    h, w = report.conditions.resolution
    conditions = [report.spec, f"{h}x{w}", report.conditions.batch, report.conditions.dtype]

    def numbers(values: dict) -> list:
        return ["" if (v := _exact(values.get(c.key))) is None else v for c in report.columns]

    def write(row: Row) -> None:
        kind = "stage" if report.depth <= 1 and row.stage else "block"
        fixed = [kind, row.name, row.kind, row.stage or "", human_shape(row.out_shape), str(row.training_only).lower()]
        writer.writerow(fixed + numbers(row.values) + conditions)

    def write_total(kind: str, label: str, values: dict, training_only: bool) -> None:
        writer.writerow([kind, label, "", "", "", str(training_only).lower()] + numbers(values) + conditions)

    for row in report.rows:
        write(row)
    for i, (label, values) in enumerate(total_rows(report)):
        write_total("total" if i == 0 else "extra_total", label.lower(), values, False)
    for row in report.training_rows:
        write(row)
    if report.training_rows:
        write_total("training_only_total", TRAINING_TOTAL.lower(), report.training_total, True)
    return buf.getvalue()


def render(report: Report, fmt: str, *, width: Optional[int] = None, fit: bool = True, explain_units: bool = False,
           chart_svg: Optional[str] = None) -> str:
    """``fmt`` is one of FORMATS. ``width``, ``fit`` (drop columns to fit the width) and
    ``explain_units`` shape the terminal table; ``chart_svg`` is the chart the HTML report embeds."""
    if fmt == "table":
        return to_table(report, width=width, explain_units=explain_units, fit=fit)
    if fmt == "html":
        return to_html(report, chart_svg=chart_svg)
    return {"markdown": to_markdown, "json": to_json, "csv": to_csv}[fmt](report)
