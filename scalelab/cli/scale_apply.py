"""`scalelab scale SPEC --phi 1` or `--depth/--width/--resolution`: apply one scaling, print (or write)
the new spec, and say its cost and estimated top-1."""

from __future__ import annotations

import json

import typer

from scalelab.analysis.costs import CONVENTION, analyze
from scalelab.cli.app import emit
from scalelab.cli.scale_options import ApplyOptions, OutputFormat
from scalelab.errors import ScalelabError
from scalelab.scaling.accuracy import estimate_accuracy
from scalelab.scaling.compound import compound_coefficients, scale_compound, scale_spec
from scalelab.spec.dump import spec_yaml


def apply_scaling(base, options: ApplyOptions) -> None:
    scaled, d, w, how = _scaled(base, options)
    total = analyze(scaled).total
    estimate = _estimate(base, d, w, scaled.input.resolution[0])
    text = spec_yaml(scaled)
    summary = {"spec": scaled.name, "base": base.name, "scaling": how, "depth": d, "width": w,
               "resolution": scaled.input.resolution[0], "macs": total.macs, "params": total.params,
               "accuracy": estimate, "convention": CONVENTION}
    output = options.output
    if output is not None:
        emit(text, output)
    if options.format == OutputFormat.json:
        emit(json.dumps({**summary, **({"output": str(output)} if output else {"yaml": text})}, indent=1, allow_nan=False), None)
        return
    if output is None:
        emit(text, None)
    acc = (f"estimated top-1 {estimate['top1']:.2f} ({estimate['method']}: {estimate['detail']})"
           if estimate.get("top1") is not None else f"accuracy not estimated: {estimate['detail']}")
    typer.echo(f"{scaled.name}: {how}: {total.macs:,} MACs, {total.params:,} parameters; {acc}", err=output is None)


def _scaled(base, o: ApplyOptions):
    """The scaled spec, its depth and width multipliers, and how it was scaled, in words."""
    if o.phi is not None:
        d, w, _ = compound_coefficients(o.phi, o.alpha, o.beta, o.gamma)
        scaled = scale_compound(base, o.phi, o.alpha, o.beta, o.gamma, divisor=o.divisor,
                                resolution_multiple=o.resolution_multiple)
        return scaled, d, w, f"phi {o.phi:g} with alpha {o.alpha:g}, beta {o.beta:g}, gamma {o.gamma:g}"
    d, w = o.depth or 1.0, o.width or 1.0
    scaled = scale_spec(base, d, w, o.resolution, divisor=o.divisor, resolution_multiple=o.resolution_multiple)
    return scaled, d, w, f"depth x{d:g}, width x{w:g}, input {scaled.input.resolution[0]}px"


def _estimate(base, d: float, w: float, pixels: int) -> dict:
    try:
        e = estimate_accuracy(base, d, w, pixels)
    except ScalelabError as exc:
        return {"top1": None, "method": None, "detail": str(exc)}
    return {"top1": e.top1, "method": e.method, "detail": e.detail, "extrapolated": e.extrapolated}
