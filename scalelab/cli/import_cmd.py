"""`scalelab import MODEL`: a PyTorch module -> a spec (YAML), exact in parameters, MACs and shapes."""

from __future__ import annotations

import json
import re
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scalelab.cli import options as O
from scalelab.cli.analyze import parse_resolution
from scalelab.cli.app import app, emit, friendly
from scalelab.errors import ScalelabError
from scalelab.output import check_output_file


class SpecFormat(str, Enum):
    yaml = "yaml"
    json = "json"


BY_SUFFIX = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
MODEL_HELP = ("The model: package.module:callable (torchvision.models:resnet50) or path/to/file.py:callable; "
              "called with no arguments, it must return a torch.nn.Module.")


def input_shape(resolution: Optional[str], input_size: Optional[str]) -> tuple[int, int, int]:
    """(channels, height, width) from --resolution 224 / 224x160 or --input 3x224x224 (default 3x224x224)."""
    if resolution is not None and input_size is not None:
        raise ScalelabError("give --resolution or --input, not both")
    if input_size is not None:
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", input_size)
        if not match or min(int(g) for g in match.groups()) < 1:
            raise ScalelabError(f"--input: expected channels x height x width such as 3x224x224, got '{input_size}'")
        return tuple(int(g) for g in match.groups())  # type: ignore[return-value]
    h, w = parse_resolution(resolution) or (224, 224)
    return (3, h, w)


def import_summary(imported) -> str:
    """What the import checked, for stderr: the spec's figures equal the module's."""
    heads = sum(imported.training_only.values())
    lines = [f"imported {len(imported.spec.blocks)} blocks; every block's output shape equals the module's; parameters "
             f"{imported.module_params - heads:,}" + (f" + training-only {heads:,}" if heads else "")
             + f" = the module's sum of p.numel(), {imported.module_params:,}"]
    for module, params in imported.training_only.items():
        where = "is not in the spec" if module in imported.left_out else f"is in the spec as training-only blocks {module}.*"
        lines.append(f"training-only: {module} ({params:,} parameters) never runs in eval mode and {where}")
    for label, count, places, _ in imported.opaque:
        lines.append(f"OPAQUE (cost unknown): {label} x{count} at {', '.join(places[:3])}"
                     + (f" and {len(places) - 3} more" if len(places) > 3 else ""))
    return "\n".join(lines)


@app.command("import")
@friendly
def import_(
    model: str = typer.Argument(..., parser=O.MODEL, help=MODEL_HELP),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r", help="Input size: 224 or HxW such as 224x160 (3 channels)."),
    input_size: Optional[str] = typer.Option(None, "--input", parser=O.INPUT, help="Input as channels x height x width, e.g. 1x28x28."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Write the spec to this .yaml (or .json) "
                                          "file, atomically; without it the spec goes to stdout."),
    format: Optional[SpecFormat] = typer.Option(None, "--format", "-f", help="yaml or json (default: by the -o "
                                                "extension, else yaml)."),
    allow_unsupported: bool = typer.Option(False, "--allow-unsupported", help="Import operations no block kind "
                                           "states as opaque blocks (parameters and shapes kept, cost unknown)."),
) -> None:
    """Import a PyTorch module as a spec: traced with torch.fx in eval mode, each operation mapped to
    a block (conv + batchnorm + activation, add, concat, squeeze-excite, ...), named by the module's
    qualified names. The spec's parameters and every block's output shape are checked against the
    module. An operation no block states is refused (exit 2) with where and how often it occurs.
    """
    if output is not None and output.suffix.lower() not in BY_SUFFIX:
        raise ScalelabError(f"-o {output}: a spec is written as .yaml, .yml or .json")
    format = SpecFormat(O.output_format(output, format and format.value, BY_SUFFIX, SpecFormat.yaml.value))
    check_output_file(output)
    shape = input_shape(resolution, input_size)
    # start-up: the command's own modules load when it runs, not with --help
    from scalelab.importer import import_model
    from scalelab.progress import progress

    with progress(f"importing {model}: building, tracing with torch.fx and checking every block"):
        imported = import_model(model, shape, allow_unsupported=allow_unsupported)
    if format is SpecFormat.json:
        from scalelab.spec import spec_data  # start-up: the command's own modules load when it runs, not with --help

        emit(json.dumps(spec_data(imported.spec), indent=2), output)
    else:
        emit(imported.text, output)
    typer.echo(import_summary(imported), err=True)
