"""`scalelab analyze SPEC`: the per-block cost report."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly
from scalelab.errors import ScalelabError
from scalelab.limits import MAX_RESOLUTION, quote

if TYPE_CHECKING:
    from scalelab.report.rows import Report
from scalelab.output import check_output_file


class ReportFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"
    csv = "csv"
    html = "html"


class Mode(str, Enum):
    infer = "infer"
    train = "train"


#: ``-o FILE`` picks the format from the file's extension.
EXTENSION_FORMATS = {".json": "json", ".csv": "csv", ".md": "markdown", ".markdown": "markdown",
                     ".html": "html", ".htm": "html", ".txt": "table"}
IMAGE_EXTENSIONS = (".png", ".svg", ".pdf")


def choose_format(fmt: Optional[ReportFormat], output: Optional[Path]) -> str:
    """The format asked for, or the one the output file's extension names; a contradiction is refused."""
    if output is not None and output.suffix.lower() in IMAGE_EXTENSIONS:
        raise ScalelabError(f"--output {output}: analyze writes reports ({', '.join(EXTENSION_FORMATS)}); for a chart "
                            f"use `scalelab plot SPEC --breakdown macs,params -o {output.name}`")
    return O.output_format(output, fmt and fmt.value, EXTENSION_FORMATS, ReportFormat.table.value)


def parse_resolution(text: Optional[str]) -> "tuple[int, int] | None":
    """'224' -> (224, 224); '224x160' -> (224, 160) (height x width)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d{1,9})\s*(?:[xX,]\s*(\d{1,9})\s*)?", text)
    if not match:
        raise ScalelabError(f"--resolution: expected a size such as 224 or 224x160 (height x width), got {quote(text, 40)}")
    h = int(match.group(1))
    w = int(match.group(2)) if match.group(2) else h
    if not (1 <= h <= MAX_RESOLUTION and 1 <= w <= MAX_RESOLUTION):
        raise ScalelabError(f"--resolution: sizes must be between 1 and {MAX_RESOLUTION:,}, got '{text}'")
    return (h, w)


def check_combinations(mode: Mode, optimizer: Optional[str], freeze_until: Optional[str], measure: bool,
                       measure_on: Optional[str], no_cache: bool, allow_noisy: bool = False) -> None:
    """Options that would do nothing without another one are refused, not ignored."""
    needs = [("--optimizer", optimizer is not None, "--mode train"),
             ("--freeze-until", freeze_until is not None, "--mode train"),
             ("--measure-on", measure_on is not None, "--measure"),
             ("--no-cache", no_cache, "--measure"),
             ("--allow-noisy", allow_noisy, "--measure")]
    for option, given, other in needs:
        enabled = mode is Mode.train if other == "--mode train" else measure
        if given and not enabled:
            raise ScalelabError(f"{option} applies only with {other}; add {other} or drop {option}")


def select_columns(report: Report, columns: str) -> Report:
    """``--columns params,macs``: the report with those columns, in that order (JSON keys)."""
    import dataclasses

    from scalelab.errors import did_you_mean

    by_key = {c.key: c for c in report.columns}
    keys = [k.strip() for k in columns.split(",") if k.strip()]
    if not keys:
        raise ScalelabError(f"--columns: name one or more of {', '.join(by_key)}")
    for key in keys:
        if key not in by_key:
            raise ScalelabError(f"--columns: unknown column '{key}'{did_you_mean(key, by_key)}; with these options "
                                f"the columns are {', '.join(by_key)}")
    return dataclasses.replace(report, columns=tuple(by_key[k] for k in dict.fromkeys(keys)))


@app.command()
@friendly
def analyze(
    spec: str = typer.Argument(..., metavar="SPEC", parser=O.SPEC, help="Spec file (YAML) or zoo name, e.g. resnet50 (see `scalelab zoo`), "
                      "or a PyTorch model as module:callable or file.py:callable, imported on the fly."),
    format: Optional[ReportFormat] = typer.Option(None, "--format", "-f", help=(
        "table (human units; the default), markdown, json or csv (exact integers), html (a self-contained page). "
        "With -o, taken from the file's extension.")),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, metavar="FILE", help=(
        "Write the report to this file, in the format its extension names (.json .csv .md .html .txt); "
        "atomically: nothing is written on failure.")),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r", metavar="SIZE",
                                             help="Input size overriding the spec's: 224 or HxW such as 224x160."),
    batch: int = typer.Option(1, "--batch", "-b", parser=O.BATCH, metavar="N", help="Batch size (MACs, ops and activations scale with it)."),
    level: int = typer.Option(2, "--level", "-l", min=1, max=2, metavar="1|2", help="Rows: 1 = one row per stage, 2 = every block."),
    depth: Optional[int] = typer.Option(None, "--depth", "-d", min=1, max=2, hidden=True,
                                        help="Old name of --level (kept for one release)."),
    columns: Optional[str] = typer.Option(None, "--columns", metavar="KEYS", parser=O.COLUMNS, help=(
        "Comma-separated columns to show, by JSON key (params, macs, macs_percent, other_ops, activation_elements, "
        "activation_bytes, and those --device, --measure and --mode train add). Default: every column, except the "
        "terminal table, which keeps what fits its width.")),
    wide: bool = typer.Option(False, "--wide", help="Terminal table: every column, however wide."),
    explain_units: bool = typer.Option(False, "--explain-units", help=(
        "Terminal table: print the counting convention and each column's unit in full.")),
    device: Optional[str] = typer.Option(None, "--device", metavar="PROFILE", parser=O.PROFILE, help="Add predicted latency on a device profile: a name "
                                         "(`scalelab devices`) or a profile YAML (`scalelab calibrate`)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", metavar="DTYPE", parser=O.DTYPE, help="fp32, fp16, bf16 or int8: bytes and latency at this "
                                        "type; adds memory columns and the inference peak (default fp32)."),
    measure: bool = typer.Option(False, "--measure", help="Add latency measured here with torch (each block and the network)."),
    measure_on: Optional[str] = typer.Option(None, "--measure-on", parser=O.DEVICE, metavar="DEVICE",
                                             help="With --measure: cpu (default), or cuda / cuda:N."),
    no_cache: bool = typer.Option(False, "--no-cache", help="With --measure: measure every block again instead of "
                                  "reusing timings cached by an earlier run."),
    allow_noisy: bool = typer.Option(False, "--allow-noisy", help="With --measure: keep timings of a machine that "
                                     "stays too busy to measure cleanly, marked noisy (default: refuse, exit 2)."),
    mode: Mode = typer.Option(Mode.infer, "--mode", help="infer, or train to add training memory and training compute "
                              "(MACs) columns."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", metavar="NAME", parser=O.OPTIMIZER, help="With --mode train: sgd (default), sgd-momentum or adam."),
    freeze_until: Optional[str] = typer.Option(None, "--freeze-until", metavar="BLOCK", parser=O.NAME, help="With --mode train: this block (or the "
                                               "last block of this stage) and every block before it are frozen."),
    crops: int = typer.Option(1, "--crops", parser=O.CROPS, metavar="N",
                              help="Test crops per image (10 for 10-crop): work x crops, same params."),
    ensemble: Optional[str] = typer.Option(None, "--ensemble", metavar="K|A,B", parser=O.ENSEMBLE, help="K copies of SPEC (e.g. 3), or SPEC "
                                           "and the named members (e.g. resnet101,resnet152): their figures add up."),
    cache_features: bool = typer.Option(False, "--cache-features", help="With --mode train --freeze-until: cost "
                                        "caching the frozen part's output once and training the rest on it."),
    images: Optional[int] = typer.Option(None, "--images", parser=O.IMAGES, metavar="N",
                                         help="With --cache-features: dataset size, for totals and disk."),
    epochs: Optional[int] = typer.Option(None, "--epochs", parser=O.EPOCHS, metavar="N",
                                         help="With --cache-features --images: epochs (default 1)."),
) -> None:
    """Per-block parameters, MACs, other ops and activation sizes of a network, with totals.

    Training-only blocks (auxiliary classifiers) are reported apart from the inference total.
    Every output states the conditions (resolution, batch) and the counting convention.
    """
    check_output_file(output)
    fmt = choose_format(format, output)
    check_combinations(mode, optimizer, freeze_until, measure, measure_on, no_cache, allow_noisy)
    if (wide or explain_units) and fmt != "table":
        raise ScalelabError("--wide and --explain-units shape the terminal table; other formats carry every column "
                            "and the units already")
    from scalelab.analysis import analyze as run_analysis

    size = parse_resolution(resolution)
    source = spec  # as written: the SPEC an --ensemble of copies repeats
    from scalelab.importer.source import is_model_ref

    if is_model_ref(spec):  # a PyTorch model: import it at the resolution asked (torch only then)
        from scalelab.importer import import_model

        from scalelab.progress import progress

        with progress(f"importing {spec}: building, tracing with torch.fx and checking every block"):
            spec, size = import_model(spec, (3, *(size or (224, 224)))).spec, None
    analysis = run_analysis(spec, resolution=size, batch=batch)
    for warning in analysis.network.warnings:
        typer.echo(f"warning: {warning}", err=True)
    from scalelab.report.advice import analyze_extra

    extra = analyze_extra(analysis.network, source, batch=batch, dtype=dtype, device=device, optimizer=optimizer or "sgd",
                          mode=mode.value, freeze_until=freeze_until, crops=crops, ensemble=ensemble,
                          cache_features=cache_features, images=images, epochs=epochs)
    measuring = {"measure": measure, "measure_on": measure_on or "cpu", "use_cache": not no_cache,
                 "allow_noisy": allow_noisy}
    report = _report(analysis, depth or level, device, dtype, measuring, mode.value, optimizer or "sgd", freeze_until,
                     extra)
    if columns is not None:
        report = select_columns(report, columns)
    chart = _breakdown_svg(analysis, report) if fmt == "html" else None
    from scalelab.report.formats import render
    from scalelab.report.table import terminal_width

    fit = fmt == "table" and output is None and not wide and columns is None  # a file gets every column
    width = terminal_width() if output is None else 100
    emit(render(report, fmt, width=width, fit=fit, explain_units=explain_units, chart_svg=chart), output)


def _report(analysis, level: int, device, dtype, measuring: dict, mode: str, optimizer: str, freeze_until, extra):
    """``measuring``: measure, measure_on, use_cache and allow_noisy, as device_figures takes them; ``extra``:
    what the advice options (training compute, cached features, crops, ensembles) add."""
    from scalelab.report import build_report, default_columns

    if device is None and dtype is None and not measuring["measure"] and mode == "infer":
        return build_report(analysis, depth=level, columns=[*default_columns(), *extra.columns], notes=extra.notes,
                            figures=extra.data)
    from scalelab.analysis.memory import dtype_bytes
    from scalelab.report import Conditions
    from scalelab.report.device import device_figures

    dtype = dtype or "fp32"
    figures = device_figures(analysis.network, dtype=dtype, batch=analysis.batch, device=device, mode=mode,
                             optimizer=optimizer, freeze_until=freeze_until, **measuring)
    conditions = Conditions(tuple(analysis.input_shape[1:]), analysis.batch, dtype, dtype_bytes(dtype))
    return build_report(analysis, depth=level, columns=[*default_columns(), *figures.columns, *extra.columns],
                        conditions=conditions, notes=[*figures.notes, *extra.notes],
                        figures={**figures.data, **extra.data}, mode=mode, extra_totals=figures.extra_totals)


def _breakdown_svg(analysis, report) -> str:
    """The per-block breakdown chart the HTML report embeds (matplotlib, imported only here)."""
    from scalelab.report.charts import block_breakdown
    from scalelab.report.plotting import breakdown_svg

    return breakdown_svg(block_breakdown(analysis, ("macs", "params", "activations"), depth=report.depth,
                                         dtype=report.conditions.dtype))
