"""`scalelab analyze SPEC`: the per-block cost report. The command hands each part of the work the
options it uses, as a typed group (``groups.pick``). SPEC may name a PyTorch model instead
(``timm:NAME``, ``package.module:callable``, ``file.py:callable``): it is imported first, and only
then is torch imported."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from scalelab.analysis.costs import Analysis
from scalelab.analysis.memory import dtype_bytes
from scalelab.api import analyze as run_analysis
from scalelab.api import import_ref
from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly
from scalelab.cli.groups import pick
from scalelab.errors import ScalelabError, did_you_mean
from scalelab.importer.source import is_model_ref
from scalelab.output import check_output_file
from scalelab.progress import progress
from scalelab.report import Conditions, build_report, default_columns
from scalelab.report.advice import Extra, analyze_extra
from scalelab.report.charts import block_breakdown
from scalelab.report.device import device_figures
from scalelab.report.formats import render
from scalelab.report.plotting import breakdown_svg
from scalelab.report.rows import Report
from scalelab.report.table import terminal_width


class ReportFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"
    csv = "csv"
    html = "html"


class Mode(str, Enum):
    infer = "infer"
    train = "train"


class AttentionKernel(str, Enum):
    """What attention keeps for backward in training (scalelab.analysis.memory.ATTENTION_KERNELS)."""

    math = "math"
    fused = "fused"


#: ``-o FILE`` picks the format from the file's extension.
EXTENSION_FORMATS = {".json": "json", ".csv": "csv", ".md": "markdown", ".markdown": "markdown",
                     ".html": "html", ".htm": "html", ".txt": "table"}
IMAGE_EXTENSIONS = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class NetworkOptions:
    """The network analysed, and at what input."""

    spec: str
    resolution: Optional[str]
    batch: int


@dataclass(frozen=True)
class ViewOptions:
    """How the report is shown, and where."""

    format: Optional[ReportFormat]
    output: Optional[Path]
    level: int
    depth: Optional[int]  # the old name of --level
    columns: Optional[str]
    wide: bool
    explain_units: bool


@dataclass(frozen=True)
class FigureOptions:
    """The figures on a device: predicted or measured latency, memory, training."""

    device: Optional[str]
    dtype: Optional[str]
    measure: bool
    measure_on: Optional[str]
    no_cache: bool
    allow_noisy: bool
    mode: Mode
    optimizer: Optional[str]
    freeze_until: Optional[str]
    attention_kernel: Optional[AttentionKernel]

    @property
    def asked(self) -> bool:
        return (self.device is not None or self.dtype is not None or self.measure or self.mode is Mode.train
                or self.attention_kernel is not None)

    @property
    def measuring(self) -> dict[str, Any]:
        """How to measure, as ``device_figures`` takes it."""
        return {"measure": self.measure, "measure_on": self.measure_on or "cpu", "use_cache": not self.no_cache,
                "allow_noisy": self.allow_noisy}


@dataclass(frozen=True)
class AdviceOptions:
    """What the advice options add: test crops, ensembles, cached features."""

    crops: int
    ensemble: Optional[str]
    cache_features: bool
    images: Optional[int]
    epochs: Optional[int]


def choose_format(fmt: Optional[ReportFormat], output: Optional[Path]) -> str:
    """The format asked for, or the one the output file's extension names; a contradiction is refused."""
    if output is not None and output.suffix.lower() in IMAGE_EXTENSIONS:
        raise ScalelabError(f"--output {output}: analyze writes reports ({', '.join(EXTENSION_FORMATS)}); for a chart "
                            f"use `scalelab plot SPEC --breakdown macs,params -o {output.name}`")
    return O.output_format(output, fmt and fmt.value, EXTENSION_FORMATS, ReportFormat.table.value)


def check_combinations(figures: FigureOptions) -> None:
    """Options that would do nothing without another one are refused, not ignored."""
    needs = [("--optimizer", figures.optimizer is not None, "--mode train"),
             ("--freeze-until", figures.freeze_until is not None, "--mode train"),
             ("--measure-on", figures.measure_on is not None, "--measure"),
             ("--no-cache", figures.no_cache, "--measure"),
             ("--allow-noisy", figures.allow_noisy, "--measure")]
    for option, given, other in needs:
        enabled = figures.mode is Mode.train if other == "--mode train" else figures.measure
        if given and not enabled:
            raise ScalelabError(f"{option} applies only with {other}; add {other} or drop {option}")


def select_columns(report: Report, columns: str) -> Report:
    """``--columns params,macs``: the report with those columns, in that order (JSON keys)."""
    by_key = {c.key: c for c in report.columns}
    keys = [k.strip() for k in columns.split(",") if k.strip()]
    if not keys:
        raise ScalelabError(f"--columns: name one or more of {', '.join(by_key)}")
    for key in keys:
        if key not in by_key:
            raise ScalelabError(f"--columns: unknown column '{key}'{did_you_mean(key, by_key)}; with these options "
                                f"the columns are {', '.join(by_key)}")
    return replace(report, columns=tuple(by_key[k] for k in dict.fromkeys(keys)))


# The options, in the order `analyze --help` lists them
_SPEC = typer.Argument(..., metavar="SPEC", parser=O.SPEC, help=(
    "Spec file (YAML) or zoo name, e.g. resnet50 (see `scalelab zoo`), "
    "or a PyTorch model as module:callable, file.py:callable or timm:NAME, imported on the fly at its own input "
    "size (timm's pretrained_cfg; else 3x224x224)."))
_FORMAT = typer.Option(None, "--format", "-f", help=(
    "table (human units; the default), markdown, json or csv (exact integers), html (a self-contained page). "
    "With -o, taken from the file's extension."))
_OUTPUT = typer.Option(None, "--output", "-o", parser=O.OUTPUT, metavar="FILE", help=(
    "Write the report to this file, in the format its extension names (.json .csv .md .html .txt); "
    "atomically: nothing is written on failure."))
_RESOLUTION = typer.Option(None, "--resolution", "-r", metavar="SIZE",
                           help="Input size overriding the spec's (or the model's): 224 or HxW such as 224x160.")
_BATCH = typer.Option(1, "--batch", "-b", parser=O.BATCH, metavar="N", help="Batch size (MACs, ops and activations scale with it).")
_LEVEL = typer.Option(2, "--level", "-l", min=1, max=2, metavar="1|2", help="Rows: 1 = one row per stage, 2 = every block.")
_DEPTH = typer.Option(None, "--depth", "-d", min=1, max=2, hidden=True,
                      help="Old name of --level (kept for one release).")
_COLUMNS = typer.Option(None, "--columns", metavar="KEYS", parser=O.COLUMNS, help=(
    "Comma-separated columns to show, by JSON key (params, macs, macs_percent, other_ops, activation_elements, "
    "activation_bytes, and those --device, --measure and --mode train add). Default: every column, except the "
    "terminal table, which keeps what fits its width."))
_WIDE = typer.Option(False, "--wide", help="Terminal table: every column, however wide.")
_EXPLAIN_UNITS = typer.Option(False, "--explain-units", help=(
    "Terminal table: print the counting convention and each column's unit in full."))
_DEVICE = typer.Option(None, "--device", metavar="PROFILE", parser=O.PROFILE, help="Add predicted latency on a device profile: a name "
                       "(`scalelab devices`) or a profile YAML (`scalelab calibrate`).")
_DTYPE = typer.Option(None, "--dtype", metavar="DTYPE", parser=O.DTYPE, help="fp32, tf32, fp16, bf16, int8 or amp (autocast): bytes and "
                      "latency at this type; adds memory columns and the inference peak (default fp32).")
_MEASURE = typer.Option(False, "--measure", help="Add latency measured here with torch (each block and the network).")
_MEASURE_ON = typer.Option(None, "--measure-on", parser=O.DEVICE, metavar="DEVICE",
                           help="With --measure: cpu (default), or cuda / cuda:N.")
_NO_CACHE = typer.Option(False, "--no-cache", help="With --measure: measure every block again instead of "
                         "reusing timings cached by an earlier run.")
_ALLOW_NOISY = typer.Option(False, "--allow-noisy", help="With --measure: keep timings of a machine that "
                            "stays too busy to measure cleanly, marked noisy (default: refuse, exit 2).")
_MODE = typer.Option(Mode.infer, "--mode", help="infer, or train to add training memory and training compute "
                     "(MACs) columns.")
_OPTIMIZER = typer.Option(None, "--optimizer", metavar="NAME", parser=O.OPTIMIZER, help="With --mode train: sgd (default), sgd-momentum or adam.")
_FREEZE_UNTIL = typer.Option(None, "--freeze-until", metavar="BLOCK", parser=O.NAME, help="With --mode train: this block (or the "
                             "last block of this stage) and every block before it are frozen.")
_ATTENTION_KERNEL = typer.Option(None, "--attention-kernel", help="The kernel attention runs by, for the memory "
                                 "figures: math (default: eager PyTorch's math kernel, which writes the score matrix "
                                 "and keeps it for backward) or fused (flash or memory-efficient: only their "
                                 "log-sum-exp).")
_CROPS = typer.Option(1, "--crops", parser=O.CROPS, metavar="N",
                      help="Test crops per image (10 for 10-crop): work x crops, same params.")
_ENSEMBLE = typer.Option(None, "--ensemble", metavar="K|A,B", parser=O.ENSEMBLE, help="K copies of SPEC (e.g. 3), or SPEC "
                         "and the named members (e.g. resnet101,resnet152): their figures add up.")
_CACHE_FEATURES = typer.Option(False, "--cache-features", help="With --mode train --freeze-until: cost "
                               "caching the frozen part's output once and training the rest on it.")
_IMAGES = typer.Option(None, "--images", parser=O.IMAGES, metavar="N",
                       help="With --cache-features: dataset size, for totals and disk.")
_EPOCHS = typer.Option(None, "--epochs", parser=O.EPOCHS, metavar="N",
                       help="With --cache-features --images: epochs (default 1).")


@app.command()
@friendly
def analyze(
    spec: str = _SPEC,
    format: Optional[ReportFormat] = _FORMAT,
    output: Optional[Path] = _OUTPUT,
    resolution: Optional[str] = _RESOLUTION,
    batch: int = _BATCH,
    level: int = _LEVEL,
    depth: Optional[int] = _DEPTH,
    columns: Optional[str] = _COLUMNS,
    wide: bool = _WIDE,
    explain_units: bool = _EXPLAIN_UNITS,
    device: Optional[str] = _DEVICE,
    dtype: Optional[str] = _DTYPE,
    measure: bool = _MEASURE,
    measure_on: Optional[str] = _MEASURE_ON,
    no_cache: bool = _NO_CACHE,
    allow_noisy: bool = _ALLOW_NOISY,
    mode: Mode = _MODE,
    optimizer: Optional[str] = _OPTIMIZER,
    freeze_until: Optional[str] = _FREEZE_UNTIL,
    attention_kernel: Optional[AttentionKernel] = _ATTENTION_KERNEL,
    crops: int = _CROPS,
    ensemble: Optional[str] = _ENSEMBLE,
    cache_features: bool = _CACHE_FEATURES,
    images: Optional[int] = _IMAGES,
    epochs: Optional[int] = _EPOCHS,
) -> None:
    """Per-block parameters, MACs, other ops and activation sizes of a network, with totals.

    Training-only blocks (auxiliary classifiers) are reported apart from the inference total.
    Every output states the conditions (resolution, batch) and the counting convention.
    """
    _run(dict(locals()))  # every option by its name: each part of the work takes its group of them


def _run(parsed: dict[str, Any]) -> None:
    view, figures = pick(ViewOptions, parsed), pick(FigureOptions, parsed)
    check_output_file(view.output)
    fmt = choose_format(view.format, view.output)
    check_combinations(figures)
    if (view.wide or view.explain_units) and fmt != "table":
        raise ScalelabError("--wide and --explain-units shape the terminal table; other formats carry every column "
                            "and the units already")
    network = pick(NetworkOptions, parsed)
    analysis, extra = _analysis(network)
    for warning in analysis.network.warnings:
        typer.echo(f"warning: {warning}", err=True)
    extra.add(_advice(analysis, network, figures, pick(AdviceOptions, parsed)))
    report = _report(analysis, view.depth or view.level, figures, extra)
    if view.columns is not None:
        report = select_columns(report, view.columns)
    chart = _breakdown_svg(analysis, report) if fmt == "html" else None
    fit = fmt == "table" and view.output is None and not view.wide and view.columns is None  # a file gets every column
    width = terminal_width() if view.output is None else 100
    emit(render(report, fmt, width=width, fit=fit, explain_units=view.explain_units, chart_svg=chart), view.output)


def _analysis(network: NetworkOptions) -> tuple[Analysis, Extra]:
    """The analysis of SPEC, or of the PyTorch model it names, imported at the resolution asked or
    else at its own input size (torch only then), with what the report says of that import."""
    size = O.parse_resolution(network.resolution)
    if not is_model_ref(network.spec):
        return run_analysis(network.spec, resolution=size, batch=network.batch), Extra()
    with progress(f"importing {network.spec}: building, capturing and checking every block"):
        imported, shape, origin = import_ref(network.spec, resolution=size)
    note = (f"Imported from {network.spec} at {'x'.join(map(str, shape))} ({origin}): the spec's parameters and "
            f"every block's output shape were checked against the module's.")
    data = {"imported": {"model": network.spec, "input": list(shape), "input_from": origin}}
    return run_analysis(imported.spec, batch=network.batch), Extra(notes=[note], data=data)


def _advice(analysis, network: NetworkOptions, figures: FigureOptions, advice: AdviceOptions):
    """What the advice options (training compute, cached features, crops, ensembles) add; SPEC as
    written is the one an --ensemble of copies repeats."""
    return analyze_extra(analysis.network, network.spec, batch=network.batch, dtype=figures.dtype, device=figures.device,
                         optimizer=figures.optimizer or "sgd", mode=figures.mode.value, freeze_until=figures.freeze_until,
                         crops=advice.crops, ensemble=advice.ensemble, cache_features=advice.cache_features,
                         images=advice.images, epochs=advice.epochs)


def _report(analysis, level: int, figures: FigureOptions, extra):
    """The report's rows and columns; ``extra``: what the import and the advice options add."""
    if not figures.asked:
        return build_report(analysis, depth=level, columns=[*default_columns(), *extra.columns], notes=extra.notes,
                            figures=extra.data)
    dtype = figures.dtype or "fp32"
    on_device = device_figures(analysis.network, dtype=dtype, batch=analysis.batch, device=figures.device,
                            mode=figures.mode.value, optimizer=figures.optimizer or "sgd",
                            freeze_until=figures.freeze_until,
                            attention_kernel=(figures.attention_kernel or AttentionKernel.math).value, **figures.measuring)
    conditions = Conditions(tuple(analysis.input_shape[1:]), analysis.batch, dtype, dtype_bytes(dtype))
    return build_report(analysis, depth=level, columns=[*default_columns(), *on_device.columns, *extra.columns],
                        conditions=conditions, notes=[*on_device.notes, *extra.notes],
                        figures={**on_device.data, **extra.data}, mode=figures.mode.value,
                        extra_totals=on_device.extra_totals)


def _breakdown_svg(analysis, report) -> str:
    """The per-block breakdown chart the HTML report embeds (plotting imports matplotlib when it draws)."""
    return breakdown_svg(block_breakdown(analysis, ("macs", "params", "activations"), depth=report.depth,
                                         dtype=report.conditions.dtype))
