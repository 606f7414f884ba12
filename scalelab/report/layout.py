"""What every report format shows alike: the title, a row's and a total's cells, the total rows and
their labels, and the notes (conditions, convention, units). ``formats``, ``table`` and ``html`` build
on these, so that none of them imports another to share them.
"""

from __future__ import annotations

from scalelab.report.rows import Report, Row
from scalelab.report.units import human_shape

FIXED_HEADERS = ("Block", "Kind", "Output")


def title(report: Report) -> str:
    return f"scalelab analysis of {report.spec}"


def cells(report: Report, row: Row) -> list[str]:
    return [row.name, row.kind, human_shape(row.out_shape)] + [c.human(row.values.get(c.key)) for c in report.columns]


def total_cells(report: Report, label: str, values: dict) -> list[str]:
    return [label, "", ""] + [c.human(values.get(c.key)) if c.key in values else "" for c in report.columns]


def total_label(report: Report) -> str:
    """What the total row adds up: in training mode it is not an inference total."""
    if report.mode != "train":
        return "Total (inference)"
    return "Total (main blocks)" if report.training_rows else "Total"


def training_caption(report: Report) -> str:
    if report.mode != "train":
        return TRAINING_LABEL
    return "Training-only blocks (trained too, not in the total above)"


def total_rows(report: Report) -> list[tuple[str, dict]]:
    """The total row, then the rows after it (such as the network timed whole)."""
    return [(total_label(report), report.total), *report.extra_totals]


def _units(report: Report) -> list[str]:
    return [f"{c.header}: {c.unit}" for c in report.columns]


def notes(report: Report) -> list[str]:
    """Conditions, convention, units and the network-level figures, in words."""
    return [
        f"Conditions: {report.conditions.describe()}.",
        f"Convention: {report.convention}.",
        "Units: " + "; ".join(_units(report)) + ".",
        *report.notes,
    ]


TRAINING_LABEL = "Training-only blocks (excluded from the inference total)"
TRAINING_TOTAL = "Total (training-only blocks)"
