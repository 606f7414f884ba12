"""`scalelab zoo`: the specs shipped with scalelab, usable by name (``scalelab analyze resnet50``)."""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING

import typer

from scalelab.analysis import CONVENTION, analyze
from scalelab.cli.app import app, emit, friendly
from scalelab.report import human_count
from scalelab.report.table import print_prose, print_whole, rendered, text_console
from scalelab.spec import load_spec, zoo_names

if TYPE_CHECKING:
    from rich.console import JustifyMethod


class ListFormat(str, Enum):
    table = "table"
    json = "json"


def zoo_rows() -> list[dict]:
    """Name, input, inference params and MACs, and published accuracy of every zoo spec."""
    rows = []
    for name in zoo_names():
        spec = load_spec(name)
        total = analyze(spec).total
        rows.append({
            "name": name,
            "resolution": list(spec.input.resolution),
            "params": total.params,
            "macs": total.macs,
            "top1": spec.reference.top1 if spec.reference else None,
            "top1_dataset": spec.reference.dataset if spec.reference else None,
            "top1_source": spec.reference.source if spec.reference else None,
            "description": " ".join(spec.description.split()),
        })
    return rows


def _table(rows: list[dict]) -> str:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="scalelab zoo", title_justify="left", header_style="bold")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("name", "left"), ("input", "right"), ("params", "right"), ("MACs", "right"), ("top-1 %", "right"),
        ("dataset", "left"), ("description", "left"))
    for header, justify in columns:
        table.add_column(header, justify=justify, overflow="fold", no_wrap=header not in ("dataset", "description"))  # figures never split
    for r in rows:
        h, w = r["resolution"]
        text = r["description"]
        cells = (r["name"], f"{h}x{w}", human_count(r["params"]), human_count(r["macs"]),
                 "-" if r["top1"] is None else f"{r['top1']:.2f}", r["top1_dataset"] or "-", text[:70] + ("..." if len(text) > 70 else ""))
        table.add_row(*(Text(c) for c in cells))  # Text(): brackets in descriptions are not rich markup
    console = text_console()  # the width rule of every command (scalelab.report.table)
    print_whole(console, table)
    print_prose(console, f"Inference params and MACs at the spec's input, batch 1. Convention: {CONVENTION}. top-1: the "
                         "published accuracy on the dataset named in each spec's reference (its source is in --format json).")
    return rendered(console)


@app.command()
@friendly
def zoo(
    format: ListFormat = typer.Option(ListFormat.table, "--format", "-f", help="table or json (exact integers)."),
) -> None:
    """List the zoo specs (usable by name anywhere a spec is expected) with params and MACs."""
    rows = zoo_rows()
    emit(json.dumps(rows, indent=2) if format is ListFormat.json else _table(rows), None)
