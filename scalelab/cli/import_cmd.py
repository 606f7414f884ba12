"""`scalelab import MODEL`: a PyTorch module -> a spec (YAML), exact in parameters, MACs and shapes."""

from __future__ import annotations

import json
import re
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scalelab.api import import_ref
from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly
from scalelab.cli.import_reference import Top1Options, described, reference, with_reference
from scalelab.errors import ScalelabError
from scalelab.output import check_output_file
from scalelab.progress import progress
from scalelab.spec import spec_data


class SpecFormat(str, Enum):
    yaml = "yaml"
    json = "json"


BY_SUFFIX = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
MODEL_HELP = ("The model: package.module:callable (torchvision.models:resnet50), path/to/file.py:callable "
              "(called with no arguments, it must return a torch.nn.Module) or timm:NAME (timm.create_model(NAME), "
              "where timm is installed).")


def input_shape(resolution: Optional[str], input_size: Optional[str]) -> "tuple[int, int, int] | None":
    """(channels, height, width) from --input 3x224x224, or None: then the model's own input size
    (timm's pretrained_cfg), else 3x224x224, with --resolution 224 / 224x160 replacing height and width."""
    if resolution is not None and input_size is not None:
        raise ScalelabError("give --resolution or --input, not both")
    if input_size is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", input_size)
    if not match or min(int(g) for g in match.groups()) < 1:
        raise ScalelabError(f"--input: expected channels x height x width such as 3x224x224, got '{input_size}'")
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


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
    lines += [f"note: {note}" for note in imported.notes]  # what torch or the module warned that says something
    return "\n".join(lines)


@app.command("import")
@friendly
def import_(
    model: str = typer.Argument(..., parser=O.MODEL, help=MODEL_HELP),
    resolution: Optional[str] = typer.Option(None, "--resolution", "-r", help="Input size: 224 or HxW such as 224x160 "
                                             "(channels: the model's, else 3)."),
    input_size: Optional[str] = typer.Option(None, "--input", parser=O.INPUT, help="Input as channels x height x width, "
                                             "e.g. 1x28x28 (default: a timm model's pretrained_cfg input_size, else 3x224x224)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Write the spec to this .yaml (or .json) "
                                          "file, atomically; without it the spec goes to stdout."),
    format: Optional[SpecFormat] = typer.Option(None, "--format", "-f", help="yaml or json (default: by the -o "
                                                "extension, else yaml)."),
    allow_unsupported: bool = typer.Option(False, "--allow-unsupported", help="Import operations no block kind "
                                           "states as opaque blocks (parameters and shapes kept, cost unknown)."),
    no_fold: bool = typer.Option(False, "--no-fold", help="Keep one primitive block per operator, wired with from: "
                                 "(by default regions fold into the zoo's block kinds and stages)."),
    top1: Optional[float] = typer.Option(None, "--top1", parser=O.TOP1, help="The model's published top-1 (%), written as the spec's "
                                         "reference; needs --top1-source. Never guessed: without it the spec has none."),
    top1_source: Optional[str] = typer.Option(None, "--top1-source", parser=O.SOURCE, help="Where --top1 comes from, e.g. "
                                              "\"timm results-imagenet.csv\"."),
    top1_dataset: str = typer.Option("ImageNet-1k", "--top1-dataset", parser=O.NAME, help="The dataset --top1 is measured on."),
    top1_crops: int = typer.Option(1, "--top1-crops", parser=O.CROPS, help="Test crops per image --top1 is measured with."),
    top1_pretraining: str = typer.Option("none", "--top1-pretraining", parser=O.NAME, help="Data the weights saw before the "
                                         "dataset, e.g. ImageNet-21k."),
    top1_distillation: str = typer.Option("none", "--top1-distillation", parser=O.NAME, help="The teacher the weights were "
                                          "distilled from, if any."),
) -> None:
    """Import a PyTorch module as a spec: captured with torch.export in eval mode, each ATen operator
    mapped to a block (conv + batchnorm + activation, add, concat, squeeze-excite, tensor operations,
    ...), named by the module's qualified names. Regions that a zoo block kind states exactly fold into
    it (residual, bottleneck, mbconv, ...) and runs of like blocks into stages (--no-fold keeps one block
    per operator). The spec's parameters and every block's output shape are checked against the
    module. An operator no block states is refused (exit 2) with where and how often it occurs.
    """
    if output is not None and output.suffix.lower() not in BY_SUFFIX:
        raise ScalelabError(f"-o {output}: a spec is written as .yaml, .yml or .json")
    format = SpecFormat(O.output_format(output, format and format.value, BY_SUFFIX, SpecFormat.yaml.value))
    check_output_file(output)
    shape, size = input_shape(resolution, input_size), O.parse_resolution(resolution)
    accuracy = Top1Options(top1, top1_source, top1_dataset, top1_crops, top1_pretraining, top1_distillation)
    accuracy.check()
    try:
        with progress(f"importing {model}: building, capturing with torch.export and checking every block"):
            imported, used, _ = import_ref(model, shape, size, allow_unsupported=allow_unsupported, fold=not no_fold)
    except ScalelabError as exc:  # what torch or the module warned before the refusal may say why
        for note in getattr(exc, "__notes__", []):
            typer.echo(f"note: {note}", err=True)
        raise
    spec, text = imported.spec, imported.text
    if accuracy.given():
        ref = reference(accuracy, used[1])
        spec, text = with_reference(text, ref)
    if format is SpecFormat.json:
        emit(json.dumps(spec_data(spec), indent=2), output)
    else:
        emit(text, output)
    typer.echo(import_summary(imported) + (f"\n{described(ref)}" if accuracy.given() else ""), err=True)
