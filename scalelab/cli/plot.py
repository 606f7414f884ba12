"""`scalelab plot REPORT.json`: accuracy-vs-cost and scaling-curve charts of a search report."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scalelab.cli.app import app, friendly
from scalelab.errors import ScalelabError


class Chart(str, Enum):
    accuracy = "accuracy"
    scaling = "scaling"
    all = "all"


class Axis(str, Enum):
    macs = "macs"
    params = "params"
    latency = "latency"


def read_report(path: Path) -> dict:
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScalelabError(f"{path}: no such report (write one with `scalelab scale --budget ...`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScalelabError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScalelabError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    if not isinstance(report, dict) or report.get("report") != "scalelab scale":
        raise ScalelabError(f"{path}: not a report of `scalelab scale` (its JSON report is REPORT_DIR/<study>.json)")
    return report


@app.command()
@friendly
def plot(
    report: Path = typer.Argument(..., help="JSON report written by `scalelab scale` (REPORT_DIR/<study>.json)."),
    chart: Chart = typer.Option(Chart.all, "--chart", help="accuracy (vs cost), scaling (curves vs phi), or all."),
    x: Axis = typer.Option(Axis.macs, "--x", help="Cost axis of the accuracy chart (log scale)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Image file for a single chart (PNG, SVG, PDF)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Folder for the charts (default: the report's)."),
    references: bool = typer.Option(True, "--references/--no-references", help="Show the published networks."),
) -> None:
    """Draw accuracy vs cost (published networks, every trial, the Pareto front, the chosen
    network) and scaling curves (accuracy and cost vs phi) from a search report."""
    from scalelab.report.charts import accuracy_vs_cost, scaling_curves

    data = read_report(report)
    if output is not None and chart == Chart.all:
        raise ScalelabError("--output names one file: choose --chart accuracy or --chart scaling (or use --output-dir)")
    folder = output.parent if output is not None else (output_dir or report.parent)
    if not folder.is_dir():
        raise ScalelabError(f"{folder}: folder does not exist")
    stem = report.stem
    todo = []
    if chart in (Chart.accuracy, Chart.all):
        todo.append(("accuracy", accuracy_vs_cost(data, x.value, references), output or folder / f"{stem}-accuracy-vs-{x.value}.png"))
    if chart in (Chart.scaling, Chart.all):
        todo.append(("scaling", scaling_curves(data), output or folder / f"{stem}-scaling-curves.png"))

    from scalelab.report.plotting import draw_accuracy_vs_cost, draw_scaling_curves

    for kind, chart_data, path in todo:  # every chart's data is computed before any file is written
        (draw_accuracy_vs_cost if kind == "accuracy" else draw_scaling_curves)(chart_data, path)
        typer.echo(str(path))
