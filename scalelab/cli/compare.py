"""`scalelab compare A B [C ...]`: networks side by side, with ratios to the first."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scalelab.analysis.figures import network_figures
from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly, wrote
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.output import check_output_file
from scalelab.report.compare import comparison, render
from scalelab.report.compare_plot import draw_comparison, draw_variants
from scalelab.scaling.ensembles import variants as expand
from scalelab.spec import load_spec


class CompareFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"
    csv = "csv"
    html = "html"


#: ``-o FILE`` picks the format from the file's extension; an image draws the chart
BY_SUFFIX = {".md": "markdown", ".markdown": "markdown", ".json": "json", ".csv": "csv", ".html": "html",
             ".htm": "html", ".txt": "table", ".png": "chart", ".svg": "chart", ".pdf": "chart"}


@app.command()
@friendly
def compare(
    specs: list[str] = typer.Argument(..., parser=O.SPEC,
                                      help="Two or more spec files (YAML) or zoo names; ratios are to the first."),
    format: Optional[CompareFormat] = typer.Option(None, "--format", "-f", help="table, markdown, json, csv or html "
                                                   "(default: from -o's extension, else table)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Write to this file (atomically); .png, .svg "
                                          "or .pdf draws the chart: ratios as grouped bars, top-1 against MACs."),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r", help="One input size for every network: "
                                             "224 or HxW (default: each spec's own)."),
    batch: int = typer.Option(1, "--batch", "-b", parser=O.BATCH, help="Batch size for MACs, memory and latency."),
    dtype: str = typer.Option("fp32", "--dtype", parser=O.DTYPE,
                              help="fp32, tf32, fp16, bf16, int8 or amp (autocast): bytes and latency at this type."),
    device: Optional[str] = typer.Option(None, "--device", parser=O.PROFILE, help="Add predicted latency on a device profile "
                                         "(`scalelab devices`)."),
    optimizer: str = typer.Option("sgd", "--optimizer", parser=O.OPTIMIZER,
                                  help="Training memory with sgd, sgd-momentum or adam."),
    ensembles: Optional[tuple] = typer.Option(None, "--ensembles", parser=O.ENSEMBLE_SIZES, metavar="K,K,...", help=(
        "Also each network as ensembles of these sizes, e.g. 1,2,3 (at most 8 values, as in `scale`): MACs and "
        "params x K, top-1 by the ensemble-gain law.")),
    crops: Optional[tuple] = typer.Option(None, "--crops", parser=O.CROP_COUNTS, metavar="N,N,...",
                                          help="Also each network on these test-crop counts, e.g. 1,10."),
) -> None:
    """Params, MACs, other ops, inference and training memory, predicted latency and published top-1
    of several networks side by side, each as a multiple of the first's too.

    Example: scalelab compare plain34 resnet34 resnet18. With --ensembles 1,2,3 --crops 1,10 each network is also
    priced as ensembles and on test crops; -o chart.png then draws top-1 against MACs for all of them, showing where
    one bigger network beats an ensemble of smaller ones.
    """
    if len(specs) < 2:
        raise ScalelabError(f"compare needs at least two networks, got {len(specs)}")
    check_output_file(output)
    fmt = O.output_format(output, format and format.value, BY_SUFFIX, "table")
    size = O.parse_resolution(resolution)
    figures = [network_figures(resolve(load_spec(s), size), batch=batch, dtype=dtype, device=device,
                               optimizer=optimizer) for s in specs]
    variants = []
    if ensembles is not None or crops is not None:
        counts = list(ensembles or (1,)), list(crops or (1,))
        variants = [v for f in figures for v in expand(f, *counts)]
    result = comparison(figures, variants)
    if fmt == "chart":
        assert output is not None  # the chart format comes from -o's extension only
        (draw_variants if variants else draw_comparison)(result, output)
        wrote(output)
        return
    emit(render(result, fmt), output)
