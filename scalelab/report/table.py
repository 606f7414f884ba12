"""The terminal table: as many columns as fit the terminal's width, and a one-line footer.

Columns are kept in a fixed order of importance (parameters and MACs first, then the figures an
option asked for, then the rest) until the table fits ``width``; the footer names how many were left
out (``--wide`` or ``--columns`` shows them). The counting convention and every unit are printed in
full with ``explain_units``.

The width rule of every command's terminal output: tables fit ``COLUMNS`` when it is set, else the
terminal's width, else (piped) 100 columns, and a cell is never split across lines (a table that
cannot fit even so is printed whole). Prose (notes, summaries) is wrapped to that width only for a
reader: on a terminal or with ``COLUMNS`` set; piped, each paragraph stays one line.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import sys
import textwrap
from typing import Optional

from scalelab.report.layout import (FIXED_HEADERS, TRAINING_TOTAL, cells, notes, title,
                                    total_cells, total_rows, training_caption)
from scalelab.report.rows import Report, Row

DEFAULT_WIDTH = 100
TEXT_MIN = 10  # a text column of a listing is never narrower than this

#: Which columns stay when the terminal is narrow, most important first; unknown keys come last.
PRIORITY = ("params", "macs", "predicted_ms", "measured_ms", "measured_cached", "training_bytes", "saved_bytes",
            "macs_percent", "activation_bytes", "block_peak_bytes", "weight_bytes", "gradient_bytes",
            "optimizer_bytes", "measured_spread_ms", "alive_bytes", "other_ops", "activation_elements")


def terminal_width() -> int:
    """``COLUMNS`` when set (as shells and the issue's users do), else the terminal's width."""
    text = os.environ.get("COLUMNS", "")
    if text.isdigit() and int(text) > 0:
        return int(text)
    return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def wraps_prose() -> bool:
    """Whether prose is wrapped (see the module's width rule): for a terminal or an explicit ``COLUMNS``."""
    text = os.environ.get("COLUMNS", "")
    return (text.isdigit() and int(text) > 0) or sys.stdout.isatty()


def text_console(width: Optional[int] = None):
    """A rich console that renders into a string at the width rule's width, without colour."""
    from rich.console import Console

    return Console(file=io.StringIO(), width=width or terminal_width(), color_system=None, force_terminal=False,
                   highlight=False, soft_wrap=False)


def print_prose(console, text: str) -> None:
    """A paragraph: wrapped to the console's width for a reader, one line when piped."""
    from rich.text import Text

    console.print(Text(text), soft_wrap=not wraps_prose())


def print_whole(console, table) -> None:
    """A rich table at the console's width, or wider where its unbreakable cells need it: a cell is
    never cut, a column never squeezed away."""
    from rich.measure import Measurement

    wide = console.options.update_width(10_000)
    if Measurement.get(console, wide, table).maximum <= console.width:
        console.print(table)
        return
    spare = 0  # what text columns may give up by folding a long word (a name in a description)
    for column in table.columns:  # rich would squeeze an unbreakable column below its cells' width
        if column.no_wrap:  # its cells keep their width; its header is broken at its words to fit
            header = str(column.header)
            width = max([len(word) for word in header.split()] +
                        [Measurement.get(console, wide, cell).maximum for cell in column.cells])
            column.header, column.min_width = "\n".join(textwrap.wrap(header, width)) or header, width
        else:
            longest = max(Measurement.get(console, wide, cell).minimum for cell in [column.header, *column.cells])
            spare += max(0, longest - TEXT_MIN)
    need, width = Measurement.get(console, wide, table).minimum - spare, console.width
    console.width = max(width, need)  # print's own width can only narrow
    console.print(table)
    console.width = width


def rendered(console) -> str:
    """What ``text_console`` collected, without trailing spaces."""
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"


def _tables(report: Report) -> list:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    def make(caption: str, rows: tuple[Row, ...], totals: list[tuple[str, dict]]) -> Table:
        table = Table(title=Text(caption), title_justify="left", box=box.SIMPLE_HEAD, header_style="bold",
                      pad_edge=False, show_edge=False)
        for header in FIXED_HEADERS:
            table.add_column(header, no_wrap=True)
        for col in report.columns:
            table.add_column(col.header, justify="right", no_wrap=True)
        for row in rows:
            table.add_row(*(Text(c) for c in cells(report, row)))  # data, not rich markup
        table.add_section()
        for label, values in totals:
            table.add_row(*(Text(c) for c in total_cells(report, label, values)), style="bold")
        return table

    tables = [make(title(report), report.rows, total_rows(report))]
    if report.training_rows:
        tables.append(make(training_caption(report), report.training_rows, [(TRAINING_TOTAL, report.training_total)]))
    return tables


def _widest(report: Report) -> int:
    from rich.measure import Measurement

    console = text_console(10_000)
    return max(Measurement.get(console, console.options, t).maximum for t in _tables(report))


def fit_columns(report: Report, width: int) -> Report:
    """The report with the columns that fit ``width``, dropped in reverse order of importance."""
    rank = {key: i for i, key in enumerate(PRIORITY)}
    order = sorted(report.columns, key=lambda c: rank.get(c.key, len(PRIORITY)))
    keep = list(order)
    while len(keep) > 2 and _widest(dataclasses.replace(report, columns=tuple(c for c in report.columns if c in keep))) > width:
        keep.pop()
    return dataclasses.replace(report, columns=tuple(c for c in report.columns if c in keep))


def footer(report: Report, hidden: int) -> str:
    """One line: the conditions, what the human units mean, and where the rest is."""
    h, w = report.conditions.resolution
    more = f" · {hidden} more column{'s' if hidden > 1 else ''} with --wide" if hidden else ""
    return (f"Input {h}x{w}, batch {report.conditions.batch}, {report.conditions.dtype}{more}"
            f" · convention and units: --explain-units")


def to_table(report: Report, width: Optional[int] = None, explain_units: bool = False, fit: bool = True) -> str:
    """A plain-text table for a terminal (human units), at most ``width`` columns wide where it can be."""
    width = width or terminal_width()
    shown = fit_columns(report, width) if fit else report
    hidden = len(report.columns) - len(shown.columns)
    console = text_console(max(width, _widest(shown)))  # a table too wide even so is printed whole, not cut
    for table in _tables(shown):
        console.print(table)
    lines = notes(report) if explain_units else [footer(shown, hidden), *report.notes]
    text = "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()).rstrip("\n")
    wrapped = [part for line in lines for part in textwrap.wrap(line, width, break_on_hyphens=False)] \
        if wraps_prose() else lines
    return text + "\n" + "\n".join(wrapped) + "\n"
