"""The HTML report: one self-contained page (no network access needed), rendered with Jinja2;
``render_page`` renders the other pages (``scalelab compare``) with the same styles and sorting, and
``to_html_tables`` the report's tables alone (an analysis shown in a notebook).

A ``<table>`` per section with numbers right-aligned and every column sortable (a few lines of
inline JavaScript; the exact integer is each cell's sort key), the totals, the conditions, the
convention and the units, the network-level figures, and the per-block breakdown chart as inline SVG.
"""

from __future__ import annotations

from typing import Optional

from scalelab.report.layout import (FIXED_HEADERS, TRAINING_TOTAL, cells, title, total_cells,
                                    total_rows, training_caption)
from scalelab.report.rows import Report
from scalelab.report.units import human_shape

TEMPLATE = "report.html.j2"
NOTEBOOK_TEMPLATE = "notebook.html.j2"


def _sort_key(value) -> str:
    return "" if value is None else repr(value)


def _section(report: Report, caption: str, rows, totals) -> dict:
    numeric = [False] * len(FIXED_HEADERS) + [True] * len(report.columns)
    body = []
    for row in rows:
        keys = [row.name, row.kind, str(_elements(row.out_shape))] + [_sort_key(row.values.get(c.key)) for c in report.columns]
        body.append(list(zip(cells(report, row), keys, numeric)))
    foot = [list(zip(total_cells(report, label, values), [""] * len(numeric), numeric)) for label, values in totals]
    headers = [(h, "") for h in FIXED_HEADERS] + [(c.header, c.unit) for c in report.columns]
    return {"caption": caption, "headers": list(zip(headers, numeric)), "rows": body, "totals": foot}


def _elements(shape) -> int:
    """Elements of a shape, or of every output of a block with several (a tuple of shapes)."""
    if shape and isinstance(shape[0], tuple):
        return sum(_elements(s) for s in shape)
    count = 1
    for d in shape:
        count *= d
    return count


def render_page(template: str, **context) -> str:
    """A page of ``templates/`` (each extends ``base.html.j2``: the styles and the sorting script)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("scalelab.report", "templates"), autoescape=select_autoescape(("html", "j2")),
                      trim_blocks=True, lstrip_blocks=True)
    return env.get_template(template).render(**context)


def _sections(report: Report) -> list[dict]:
    sections = [_section(report, "Blocks" if report.depth > 1 else "Stages", report.rows, total_rows(report))]
    if report.training_rows:
        sections.append(_section(report, training_caption(report), report.training_rows,
                                 [(TRAINING_TOTAL, report.training_total)]))
    return sections


def to_html(report: Report, chart_svg: Optional[str] = None) -> str:
    h, w = report.conditions.resolution
    return render_page(
        TEMPLATE, title=title(report), report=report, total_label=total_rows(report)[0][0], sections=_sections(report),
        chart_svg=chart_svg, input=f"{h}x{w}", units=[(c.header, c.unit) for c in report.columns],
        human_shape=human_shape)


def to_html_tables(report: Report) -> str:
    """The report's tables and totals as an HTML fragment, for a notebook (``Analysis._repr_html_``):
    the same tables as the page, without the page's styles, which would restyle the notebook."""
    h, w = report.conditions.resolution
    return render_page(NOTEBOOK_TEMPLATE, title=title(report), report=report, sections=_sections(report),
                       input=f"{h}x{w}")
