"""`scalelab explain SPEC`: the cost arithmetic, layer by layer, as the course notes do it by hand."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly
from scalelab.errors import ScalelabError
from scalelab.graph import resolve
from scalelab.output import check_output_file
from scalelab.report.explain import explain as run_explain
from scalelab.report.explain import render
from scalelab.spec import load_spec

#: ``-o FILE`` picks the format from the file's extension
BY_SUFFIX = {".md": "markdown", ".markdown": "markdown", ".json": "json", ".txt": "text"}


class ExplainFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"


@app.command()
@friendly
def explain(
    spec: str = typer.Argument(..., parser=O.SPEC, help="Spec file (YAML) or zoo name, e.g. resnet50 (see `scalelab zoo`)."),
    block_arg: Optional[str] = typer.Argument(None, metavar="[BLOCK]", parser=O.NAME, help="Same as --block."),
    block: Optional[str] = typer.Option(None, "--block", "-k", parser=O.NAME, help="Only this block, or every block of this stage."),
    format: Optional[ExplainFormat] = typer.Option(None, "--format", "-f", help="text, markdown or json (default: from "
                                                   "-o's extension, .md, .json or .txt, else text)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT,
                                          help="Write to this file (atomically: nothing is written on failure)."),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r",
                                             help="Input size overriding the spec's: 224 or HxW such as 224x160."),
) -> None:
    """Show the MACs and parameter arithmetic of every conv and linear layer with exact integers.

    Each layer reads output positions × filters × filter size, e.g. 28 × 28 × 32 × (5 × 5 × 192) = 120,422,400, then block and spec totals. A depthwise conv followed by a pointwise 1x1 conv is set against the dense conv it replaces, with the ratio 1/n_c' + 1/f² (Howard et al. 2017).
    """
    if block_arg is not None and block is not None and block_arg != block:
        raise ScalelabError(f"explain: block '{block_arg}' and --block '{block}' disagree; give one")
    check_output_file(output)
    fmt = O.output_format(output, format and format.value, BY_SUFFIX, "text")
    network = resolve(load_spec(spec), O.parse_resolution(resolution))
    emit(render(run_explain(network, block or block_arg), fmt), output)
