"""Rendering a ``Report``: terminal table (rich), Markdown, JSON, CSV and HTML.

Tables show human units (25.6M, 4.09G); JSON and CSV carry the exact integers. Every format states
the spec, the conditions (resolution, batch, dtype), the counting convention and each column's unit.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Optional

from scalelab.report.rows import Report, Row
from scalelab.report.units import human_shape

FORMATS = ("table", "markdown", "json", "csv", "html")

_FIXED_HEADERS = ("Block", "Kind", "Output")


def _title(report: Report) -> str:
    return f"scalelab analysis of {report.spec}"


def _cells(report: Report, row: Row) -> list[str]:
    return [row.name, row.kind, human_shape(row.out_shape)] + [c.human(row.values.get(c.key)) for c in report.columns]


def _total_cells(report: Report, label: str, values: dict) -> list[str]:
    return [label, "", ""] + [c.human(values.get(c.key)) for c in report.columns]


def _units(report: Report) -> list[str]:
    return [f"{c.header}: {c.unit}" for c in report.columns]


TRAINING_LABEL = "Training-only blocks (excluded from the inference total)"


# --------------------------------------------------------------------------------------------------
# Terminal and HTML (rich)


def _rich_tables(report: Report) -> list:
    from rich.table import Table
    from rich.text import Text

    def make(title: str, rows: tuple[Row, ...], total_label: str, total: dict) -> Table:
        table = Table(title=Text(title), title_justify="left", show_footer=False, header_style="bold")
        for header in _FIXED_HEADERS:
            table.add_column(header, no_wrap=True)
        for col in report.columns:
            table.add_column(col.header, justify="right", no_wrap=True)
        for row in rows:
            table.add_row(*(Text(c) for c in _cells(report, row)))  # data, not rich markup
        table.add_section()
        table.add_row(*(Text(c) for c in _total_cells(report, total_label, total)), style="bold")
        return table

    tables = [make(_title(report), report.rows, "Total (inference)", report.total)]
    if report.training_rows:
        tables.append(make(TRAINING_LABEL, report.training_rows, "Total (training-only)",
                           report.training_total))
    return tables


def _rich_console(width: int, record: bool = False):
    from rich.console import Console

    return Console(file=io.StringIO(), width=width, record=record, color_system=None,
                   force_terminal=False, highlight=False, soft_wrap=False)


def _notes(report: Report) -> list[str]:
    return [
        f"Conditions: {report.conditions.describe()}.",
        f"Convention: {report.convention}.",
        "Units: " + "; ".join(_units(report)) + ".",
        *report.notes,
    ]


def to_table(report: Report, width: Optional[int] = None) -> str:
    """A plain-text table for a terminal (human units)."""
    from rich.text import Text

    console = _rich_console(width or 240)
    for table in _rich_tables(report):
        console.print(table)
    for note in _notes(report):
        console.print(Text(note), soft_wrap=True)
    # rich pads every line to the console width; a file or pipe should not carry that padding
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"


def to_html(report: Report) -> str:
    from rich.text import Text

    console = _rich_console(240, record=True)
    for table in _rich_tables(report):
        console.print(table)
    for note in _notes(report):
        console.print(Text(note), soft_wrap=True)
    return console.export_html(inline_styles=True)


# --------------------------------------------------------------------------------------------------
# Markdown


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(report: Report, rows: tuple[Row, ...], total_label: str, total: dict) -> list[str]:
    headers = [*_FIXED_HEADERS, *(c.header for c in report.columns)]
    lines = [_md_row(headers), "|" + "|".join([":---"] * len(_FIXED_HEADERS) + ["---:"] * len(report.columns)) + "|"]
    lines += [_md_row(_cells(report, r)) for r in rows]
    lines.append(_md_row([f"**{c}**" if c else "" for c in _total_cells(report, total_label, total)]))
    return lines


def to_markdown(report: Report) -> str:
    lines = [f"# {_title(report)}", ""]
    if report.description:
        lines += [report.description.strip(), ""]
    lines += _md_table(report, report.rows, "Total (inference)", report.total)
    if report.training_rows:
        lines += ["", f"## {TRAINING_LABEL}", ""]
        lines += _md_table(report, report.training_rows, "Total (training-only)", report.training_total)
    lines += [""] + [f"- {note}" for note in _notes(report)]
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
        "total": _json_total(report, report.total),
        "training_only_rows": [_json_row(report, r) for r in report.training_rows],
        "training_only_total": _json_total(report, report.training_total) if report.training_rows else None,
        **report.figures,
    }


def to_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, allow_nan=False) + "\n"


CSV_FIXED = ("row", "name", "kind", "stage", "out_shape", "training_only")


def to_csv(report: Report) -> str:
    """CSV with '#' comment lines for spec, conditions, convention and units (pandas: comment='#')."""
    buf = io.StringIO()
    buf.write(f"# {_title(report)}\n")
    for note in _notes(report):
        buf.write(f"# {note}\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(CSV_FIXED) + [c.key for c in report.columns])

    def write(kind: str, row: Row) -> None:
        fixed = [kind, row.name, row.kind, row.stage or "", human_shape(row.out_shape), str(row.training_only).lower()]
        writer.writerow(fixed + ["" if (v := _exact(row.values.get(c.key))) is None else v for c in report.columns])

    def write_total(kind: str, label: str, values: dict, training_only: bool) -> None:
        fixed = [kind, label, "", "", "", str(training_only).lower()]
        writer.writerow(fixed + ["" if (v := _exact(values.get(c.key))) is None else v for c in report.columns])

    row_kind = "stage" if report.depth <= 1 else "block"
    for row in report.rows:
        write(row_kind if row.stage else "block", row)
    write_total("total", "total (inference)", report.total, False)
    for row in report.training_rows:
        write(row_kind if row.stage else "block", row)
    if report.training_rows:
        write_total("training_only_total", "total (training-only)", report.training_total, True)
    return buf.getvalue()


def render(report: Report, fmt: str) -> str:
    renderers = {"table": to_table, "markdown": to_markdown, "json": to_json, "csv": to_csv, "html": to_html}
    return renderers[fmt](report)
