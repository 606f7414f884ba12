"""`scalelab schema`: the JSON Schema of a spec, for editors and validators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly
from scalelab.output import check_output_file
from scalelab.spec import spec_schema


@app.command()
@friendly
def schema(
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Write the schema to this file instead of printing it."),
) -> None:
    """Print the JSON Schema (draft 2020-12) of a network spec.

    Point an editor's YAML language server at it to validate specs as you type.
    """
    check_output_file(output)
    emit(json.dumps(spec_schema(), indent=2), output)
