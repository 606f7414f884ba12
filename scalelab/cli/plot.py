"""`scalelab plot REPORT.json`: accuracy-vs-cost and scaling-curve charts of a search report;
`scalelab plot SPEC --breakdown macs,params,...`: per-block cost bars of one network."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from scalelab.analysis import analyze
from scalelab.analysis.latency import predict_latency
from scalelab.cli import options as O
from scalelab.cli.app import app, friendly, wrote
from scalelab.errors import ScalelabError
from scalelab.limits import MAX_REPORT_BYTES
from scalelab.output import check_output_file
from scalelab.report.charts import (
    accuracy_vs_cost,
    block_breakdown,
    ensemble_chart,
    parse_breakdown_metrics,
    scaling_curves,
)
from scalelab.report.compare_plot import draw_ensemble_chart
from scalelab.report.plotting import draw_accuracy_vs_cost, draw_breakdown, draw_scaling_curves
from scalelab.report.search_schema import check_search_report


class Chart(str, Enum):
    accuracy = "accuracy"
    scaling = "scaling"
    ensembles = "ensembles"
    all = "all"


class Axis(str, Enum):
    macs = "macs"
    params = "params"
    latency = "latency"


def read_report(path: Path) -> dict:
    hint = "" if Path(path).suffix == ".json" else "; for a per-block chart of a spec add --breakdown macs,params,activations"
    try:
        if Path(path).stat().st_size > MAX_REPORT_BYTES:
            raise ScalelabError(f"{path}: larger than the {MAX_REPORT_BYTES:,} bytes a report may have (README, 'Bounds')")
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScalelabError(f"{path}: no such report (write one with `scalelab scale --budget ...`){hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScalelabError(f"{path}: cannot read: {exc}{hint}") from None
    except json.JSONDecodeError as exc:
        raise ScalelabError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}{hint}") from None
    except RecursionError:
        raise ScalelabError(f"{path}: not a report: nested too deeply to read") from None
    if not isinstance(report, dict) or report.get("report") != "scalelab scale":
        raise ScalelabError(f"{path}: not a report of `scalelab scale` (its JSON report is REPORT_DIR/<study>.json); "
                            f"for a per-block chart of a spec add --breakdown macs,params,activations")
    check_search_report(report, str(path))
    return report


IMAGE_FORMATS = ("png", "svg", "pdf")


def check_image_path(path: Path) -> None:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        raise ScalelabError(f"{path}: charts are written as {', '.join(IMAGE_FORMATS)}; name the file with one of "
                            f"these extensions (got '{path.suffix or 'none'}')")
    check_output_file(path)


@app.command()
@friendly
def plot(
    source: str = typer.Argument(..., metavar="REPORT_OR_SPEC", parser=O.REPORT_OR_SPEC, help=(
        "JSON report written by `scalelab scale` (REPORT_DIR/<study>.json); with --breakdown, a spec file or "
        "zoo name (e.g. resnet50).")),
    chart: Optional[Chart] = typer.Option(None, "--chart", help=(
        "Report charts: accuracy (vs cost), scaling (curves vs phi), ensembles (one bigger network or an ensemble: "
        "reports of searches with --ensembles/--crops), or all (default; with -o FILE: accuracy).")),
    x: Axis = typer.Option(Axis.macs, "--x", help="Cost axis of the accuracy chart (log scale)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Image file for a single chart (PNG, SVG, PDF)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", parser=O.FOLDER, help=(
        "Folder for the charts (default: the report's folder; for --breakdown the current folder).")),
    references: bool = typer.Option(True, "--references/--no-references", help="Show the published networks."),
    breakdown: Optional[str] = typer.Option(None, "--breakdown", parser=O.METRICS, help=(
        "Draw a per-block bar chart of the spec instead: comma-separated metrics among macs, params, "
        "activations (output bytes) and latency (predicted; needs --device), or all.")),
    level: int = typer.Option(2, "--level", "-l", min=1, max=2, help="With --breakdown: 1 = one bar per stage, 2 = every block."),
    depth: Optional[int] = typer.Option(None, "--depth", "-d", min=1, max=2, hidden=True,
                                        help="Old name of --level (kept for one release)."),
    device: Optional[str] = typer.Option(None, "--device", parser=O.PROFILE, help=(
        "With --breakdown: device profile for predicted latency, a name (`scalelab devices`) or a profile YAML.")),
    dtype: Optional[str] = typer.Option(None, "--dtype", parser=O.DTYPE, help="With --breakdown: fp32, tf32, fp16, bf16, int8 or amp (autocast) for bytes and latency (default fp32)."),
    batch: int = typer.Option(1, "--batch", "-b", parser=O.BATCH, help="With --breakdown: batch size (MACs, activations and latency scale with it)."),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r", help="With --breakdown: input size overriding the spec's, 224 or HxW."),
) -> None:
    """Charts. From a search report: accuracy vs cost (published networks, every trial, the Pareto
    front, the chosen network) and scaling curves (accuracy and cost vs phi). From a spec with
    --breakdown: horizontal bars of each block's (or stage's) MACs, parameters, activation bytes and
    predicted latency, so the costly blocks stand out."""
    if output is not None:
        check_image_path(output)
    level = depth or level
    if breakdown is not None:
        if chart is not None or x != Axis.macs or not references:
            raise ScalelabError("--chart, --x and --references apply to search reports, not to --breakdown charts")
        _breakdown(source, breakdown, level, device, dtype, batch, resolution, output, output_dir)
        return
    given = [name for name, value in (("--device", device), ("--dtype", dtype), ("--resolution", resolution))
             if value is not None] + (["--batch"] if batch != 1 else []) + (["--level"] if level != 2 else [])
    if given:
        raise ScalelabError(f"{', '.join(given)} apply to --breakdown charts of a spec (e.g. "
                            f"`scalelab plot resnet50 --breakdown macs,params`), not to a search report")
    if chart is None:
        chart = Chart.all if output is None else Chart.accuracy  # one file names one chart
    _report_charts(Path(source), chart, x, output, output_dir, references)


def _breakdown(spec: str, metrics_text: str, depth: int, device: Optional[str], dtype: Optional[str], batch: int,
               resolution: Optional[str], output: Optional[Path], output_dir: Optional[Path]) -> None:
    metrics = parse_breakdown_metrics(metrics_text, with_latency=device is not None)
    if output is None and output_dir is not None and not output_dir.is_dir():
        raise ScalelabError(f"{output_dir}: folder does not exist")
    analysis = analyze(spec, resolution=O.parse_resolution(resolution), batch=batch)
    for warning in analysis.network.warnings:
        typer.echo(f"warning: {warning}", err=True)
    latency = None
    if device is not None:
        latency = predict_latency(analysis.network, device, dtype or "fp32", batch)
    data = block_breakdown(analysis, metrics, depth=depth, dtype=dtype or "fp32", latency=latency)
    path = output or (output_dir or Path(".")) / f"{analysis.name}-breakdown.png"

    draw_breakdown(data, path)
    wrote(path)


def _report_charts(report: Path, chart: Chart, x: Axis, output: Optional[Path], output_dir: Optional[Path],
                   references: bool) -> None:
    data = read_report(report)
    if output is not None and chart == Chart.all:
        raise ScalelabError("--output names one file: choose --chart accuracy (the default) or --chart scaling, "
                            "or use --output-dir for all")
    folder = output.parent if output is not None else (output_dir or report.parent)
    if not folder.is_dir():
        raise ScalelabError(f"{folder}: folder does not exist")
    stem = report.stem
    todo: list[tuple[str, object, Path]] = []  # (chart kind, its data, its file)
    if chart in (Chart.accuracy, Chart.all):
        todo.append(("accuracy", accuracy_vs_cost(data, x.value, references), output or folder / f"{stem}-accuracy-vs-{x.value}.png"))
    if chart in (Chart.scaling, Chart.all):
        todo.append(("scaling", scaling_curves(data), output or folder / f"{stem}-scaling-curves.png"))
    if chart == Chart.ensembles or (chart == Chart.all and data.get("ensembles")):
        todo.append(("ensembles", ensemble_chart(data), output or folder / f"{stem}-ensembles-vs-macs.png"))

    draw: dict[str, Callable[[Any, Path], Path]] = {
        "accuracy": draw_accuracy_vs_cost, "scaling": draw_scaling_curves, "ensembles": draw_ensemble_chart}
    for kind, chart_data, path in todo:  # every chart's data is computed before any file is written
        draw[kind](chart_data, path)
        wrote(path)
