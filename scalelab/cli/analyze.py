"""`scalelab analyze SPEC`: the per-block cost report."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scalelab.cli.app import app, emit, friendly
from scalelab.errors import ScalelabError


class ReportFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"
    csv = "csv"
    html = "html"


def parse_resolution(text: Optional[str]) -> "tuple[int, int] | None":
    """'224' -> (224, 224); '224x160' -> (224, 160) (height x width)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+)\s*)?", text)
    if not match:
        raise ScalelabError(f"--resolution: expected a size such as 224 or 224x160 (height x width), got '{text}'")
    h = int(match.group(1))
    w = int(match.group(2)) if match.group(2) else h
    if h < 1 or w < 1:
        raise ScalelabError(f"--resolution: sizes must be positive, got '{text}'")
    return (h, w)


@app.command()
@friendly
def analyze(
    spec: str = typer.Argument(..., help="Spec file (YAML) or zoo name, e.g. resnet50 (see `scalelab zoo`)."),
    format: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f",
                                        help="Output format: table (human units), markdown, json or csv (exact integers), html."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write the report to this file (atomically: nothing is written on failure)."),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r",
                                             help="Input size overriding the spec's: 224 or HxW such as 224x160."),
    batch: int = typer.Option(1, "--batch", "-b", min=1, help="Batch size (MACs, ops and activations scale with it)."),
    depth: int = typer.Option(2, "--depth", "-d", min=1, max=2,
                              help="Rows: 1 = one row per stage, 2 = every block."),
    device: Optional[str] = typer.Option(None, "--device", help="Add predicted latency on a device profile: a name "
                                         "(`scalelab devices`) or a profile YAML (`scalelab calibrate`)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32, fp16, bf16 or int8: bytes and latency at this "
                                        "type; adds memory columns and the inference peak (default fp32)."),
    measure: bool = typer.Option(False, "--measure", help="Add latency measured here with torch (each block and the network)."),
    measure_on: str = typer.Option("cpu", "--measure-on", help="Where --measure runs: cpu, or cuda / cuda:N."),
    allow_noisy: bool = typer.Option(False, "--allow-noisy", help="With --measure: keep timings of a machine that "
                                     "stays too busy to measure cleanly, marked noisy (default: refuse, exit 2)."),
    mode: str = typer.Option("infer", "--mode", help="infer, or train to add training memory and training compute (MACs) columns."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="With --mode train: sgd, sgd-momentum or adam."),
    freeze_until: Optional[str] = typer.Option(None, "--freeze-until", help="With --mode train: this block and every "
                                               "block before it are frozen (no gradients, no optimizer state)."),
    crops: int = typer.Option(1, "--crops", min=1, help="Test crops per image (10 for 10-crop): work x crops, same params."),
    ensemble: Optional[str] = typer.Option(None, "--ensemble", help="K copies of SPEC (e.g. 3), or SPEC and the "
                                           "named members (e.g. resnet101,resnet152): their figures add up."),
    cache_features: bool = typer.Option(False, "--cache-features", help="With --mode train --freeze-until: cost "
                                        "caching the frozen part's output once and training the rest on it."),
    images: Optional[int] = typer.Option(None, "--images", help="With --cache-features: dataset size, for totals and disk."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="With --cache-features --images: epochs (default 1)."),
) -> None:
    """Per-block parameters, MACs, other ops and activation sizes of a network, with totals.

    Training-only blocks (auxiliary classifiers) are reported apart from the inference total.
    Every output states the counting convention and the conditions (resolution, batch).
    """
    from scalelab.analysis import analyze as run_analysis
    from scalelab.report import build_report, default_columns, render
    from scalelab.report.advice import analyze_extra

    analysis = run_analysis(spec, resolution=parse_resolution(resolution), batch=batch)
    extra = analyze_extra(analysis.network, spec, batch=batch, dtype=dtype, device=device, optimizer=optimizer,
                          mode=mode, freeze_until=freeze_until, crops=crops, ensemble=ensemble,
                          cache_features=cache_features, images=images, epochs=epochs)
    if device is None and dtype is None and not measure and mode == "infer":
        report = build_report(analysis, depth=depth, columns=[*default_columns(), *extra.columns],
                              notes=extra.notes, figures=extra.data)
        emit(render(report, format.value), output)
        return
    from scalelab.analysis.memory import dtype_bytes
    from scalelab.report.device import device_figures
    from scalelab.report import Conditions

    if mode not in ("infer", "train"):
        raise ScalelabError(f"--mode: expected infer or train, got '{mode}'")
    dtype = dtype or "fp32"
    figures = device_figures(analysis.network, dtype=dtype, batch=batch, device=device, measure=measure,
                             mode=mode, optimizer=optimizer, freeze_until=freeze_until, measure_on=measure_on,
                             allow_noisy=allow_noisy)
    conditions = Conditions(tuple(analysis.input_shape[1:]), batch, dtype, dtype_bytes(dtype))
    report = build_report(analysis, depth=depth, columns=[*default_columns(), *figures.columns, *extra.columns],
                          conditions=conditions, notes=[*figures.notes, *extra.notes],
                          figures={**figures.data, **extra.data})
    emit(render(report, format.value), output)
