"""`scalelab explain SPEC`: the cost arithmetic, layer by layer, as the course notes do it by hand."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scalelab.cli.app import app, emit, friendly
from scalelab.errors import ScalelabError


class ExplainFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"


@app.command()
@friendly
def explain(
    spec: str = typer.Argument(..., help="Spec file (YAML) or zoo name, e.g. resnet50 (see `scalelab zoo`)."),
    block_arg: Optional[str] = typer.Argument(None, metavar="[BLOCK]", help="Same as --block."),
    block: Optional[str] = typer.Option(None, "--block", "-k", help="Only this block, or every block of this stage."),
    format: Optional[ExplainFormat] = typer.Option(None, "--format", "-f", help="text, markdown or json (default: from "
                                                   "-o's extension, .md, .json or .txt, else text)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write to this file (atomically: nothing is written on failure)."),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r",
                                             help="Input size overriding the spec's: 224 or HxW such as 224x160."),
) -> None:
    """Show the MACs and parameter arithmetic of every conv and linear layer with exact integers.

    Each layer reads output positions × filters × filter size, e.g. 28 × 28 × 32 × (5 × 5 × 192) = 120,422,400, then block and spec totals. A depthwise conv followed by a pointwise 1x1 conv is set against the dense conv it replaces, with the ratio 1/n_c' + 1/f² (Howard et al. 2017).
    """
    from scalelab.cli.analyze import parse_resolution
    from scalelab.graph import resolve
    from scalelab.report.explain import explain as run_explain, render
    from scalelab.spec import load_spec

    if block_arg is not None and block is not None and block_arg != block:
        raise ScalelabError(f"explain: block '{block_arg}' and --block '{block}' disagree; give one")
    fmt = format.value if format is not None else _by_suffix(output)
    network = resolve(load_spec(spec), parse_resolution(resolution))
    emit(render(run_explain(network, block or block_arg), fmt), output)


def _by_suffix(output: Optional[Path]) -> str:
    if output is None:
        return "text"
    suffix = output.suffix.lower()
    formats = {".md": "markdown", ".markdown": "markdown", ".json": "json", ".txt": "text"}
    if suffix not in formats:
        raise ScalelabError(f"-o {output}: cannot tell the format from '{output.suffix or 'no extension'}'; use "
                            f"--format, or one of {', '.join(formats)}")
    return formats[suffix]
