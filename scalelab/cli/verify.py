"""`scalelab verify SPEC`: cross-check the analysis against the built torch module, fvcore and FlopCounterMode."""

from __future__ import annotations

import json
from enum import Enum
from typing import Optional

import typer

from scalelab.cli import options as O
from scalelab.cli.app import app, friendly
from scalelab.progress import progress
from scalelab.verify import checks_table
from scalelab.verify import verify as run_checks


class VerifyFormat(str, Enum):
    table = "table"
    json = "json"


@app.command()
@friendly
def verify(
    spec: str = typer.Argument(..., parser=O.SPEC, help="Spec file (YAML) or zoo name."),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r", help="Input size overriding the spec's: 224 or HxW."),
    format: VerifyFormat = typer.Option(VerifyFormat.table, "--format", "-f", help="table or json."),
) -> None:
    """Build the spec's torch module and cross-check every block's output shape, the parameters
    (torch), and the MACs (FlopCounterMode, fvcore's conv and linear counts). Prints one agreement
    table with each difference explained; exits 1 on a real mismatch.
    """
    with progress(f"verifying {spec}: building the module, running it and counting with torch and fvcore"):
        analysis, checks = run_checks(spec, O.parse_resolution(resolution))
    if format is VerifyFormat.json:
        typer.echo(json.dumps({"spec": analysis.name, "input": list(analysis.input_shape),
                               "agrees": all(c.agrees for c in checks),
                               "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        typer.echo(checks_table(analysis, checks), nl=False)
    if not all(c.agrees for c in checks):
        raise typer.Exit(1)
