"""`scalelab accuracy`: the published accuracies, the scaling-law estimator's validation, and
estimates for a scaled spec."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from scalelab.cli import options as O
from scalelab.cli.app import app, emit, friendly
from scalelab.errors import ScalelabError
from scalelab.output import check_output_file
from scalelab.report import human_count
from scalelab.report.table import print_prose, print_whole, rendered, text_console
from scalelab.scaling.accuracy import estimate_accuracy
from scalelab.scaling.accuracy.intervals import calibration, coverage, jackknife_coverage, leave_one_network_out
from scalelab.scaling.accuracy.published import published
from scalelab.scaling.accuracy.scaling_law import fitted_law, leave_one_out
from scalelab.scaling.accuracy.transformer_law import describe_series_protocol, family_laws
from scalelab.spec import load_spec


class Method(str, Enum):
    published = "published"
    scaling_law = "scaling-law"
    proxy = "proxy"


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"


def _render(title: str, headers: list[str], rows: list[list[str]], notes: list[str], fmt: Format) -> str:
    if fmt is Format.markdown:
        lines = [f"### {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines + [""] + notes) + "\n"
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", header_style="bold")
    for i, h in enumerate(headers):  # figures never split; text columns wrap
        table.add_column(h, justify="left" if i == 0 or h in ("series", "test", "source", "held out") else "right",
                         overflow="fold", no_wrap=h not in ("series", "test", "source", "held out"))
    for r in rows:
        table.add_row(*(Text(c) for c in r))
    console = text_console()  # the width rule of every command (scalelab.report.table)
    print_whole(console, table)
    for note in notes:
        print_prose(console, note)
    return rendered(console)


def _test(protocol) -> str:
    """A published row's protocol in a table cell: '10 crops', '1 crop, pre-trained on ImageNet-21k'."""
    parts = ["1 crop" if protocol.crops == 1 else f"{protocol.crops} crops"]
    parts += [f"pre-trained on {protocol.pretraining}"] if protocol.pretraining.lower() != "none" else []
    parts += [f"distilled from {protocol.distillation}"] if protocol.distillation.lower() != "none" else []
    return ", ".join(parts)


def _published_text(fmt: Format) -> str:
    table = published()
    if fmt is Format.json:
        return json.dumps([{**r.model_dump(), "protocol": table.protocol_of(r).model_dump()} for r in table.rows],
                          indent=2, allow_nan=False)
    rows = [[r.name, r.series or "-", f"{r.top1:g}", human_count(r.macs), human_count(r.params), str(r.resolution),
             _test(table.protocol_of(r)), r.source] for r in table.rows]
    notes = ["Published ImageNet-1k top-1, measured as 'test' says (crops averaged per image, at the input size; no "
             "pre-training on other data and no distillation unless it says so). MACs = multiply-adds per image as each "
             "source gives them (the papers' 'FLOPs'). Series feed the scaling-law estimator: `scalelab accuracy "
             "--validate`; a series shares one protocol."]
    return _render("published accuracy", ["network", "series", "top-1 %", "MACs", "params", "input", "test", "source"],
                   rows, notes, fmt)


def validation_summary() -> dict:
    """Leave-one-out errors of the scaling-law estimator, per series, in top-1 points, and how often
    its 80% prediction intervals cover networks held out of the fit."""
    held = leave_one_out()
    series: dict[str, list] = {}
    for h in held:
        series.setdefault(h.series, []).append(h)
    law = fitted_law()
    cal = calibration()
    loo = leave_one_network_out(list(cal.points))
    return {
        "law": {**{name: {"floor": term.floor, "exponent": term.exponent} for name, term in law.terms().items()},
                "fitted_range": {name: list(bounds) for name, bounds in law.ranges.items()},
                "formula": law.describe()},
        "series": {
            name: {"mean_abs_error": sum(abs(h.error) for h in hs) / len(hs),
                   "max_abs_error": max(abs(h.error) for h in hs),
                   "holdouts": [{"name": h.name, "actual": h.actual, "predicted": h.predicted} for h in hs]}
            for name, hs in series.items()
        },
        "intervals": {
            "level": 0.8, "q": cal.q, "distance_scale": cal.scale,
            "formula": f"estimate +- {cal.q:.2f} x (1 + distance / {cal.scale:g}), distance in ln-multiplier "
                       "space from the fitted range (0 inside it)",
            "coverage_series_held_out": jackknife_coverage(list(cal.held_series), cal.scale),
            "coverage_network_held_out": coverage(loo, cal.q, cal.scale),
            "held_out_networks": len(cal.held_series),
            "mean_width_series_held_out": sum(2 * cal.q * cal.sigma(r.distance) for r in cal.held_series) / len(cal.held_series),
        },
        # transformers: a law per protocol, its leave-one-series-out errors as they are (transformer_law)
        "transformer": [{"protocol": describe_series_protocol(fam.series[0]), "series": list(fam.series),
                         "largest_abs_error": fam.largest, "errors": fam.errors(),
                         "holdouts": [{"series": r.series, "name": r.name, "error": r.error} for r in fam.held]}
                        for key, fam in family_laws("transformer").items()],
    }


def _validation_text(fmt: Format) -> str:
    summary = validation_summary()
    if fmt is Format.json:
        return json.dumps(summary, indent=2, allow_nan=False)
    rows = [[name, h["name"], f"{h['actual']:g}", f"{h['predicted']:.2f}", f"{h['predicted'] - h['actual']:+.2f}"]
            for name, s in summary["series"].items() for h in s["holdouts"]]
    per_series = "; ".join(f"{name}: mean {s['mean_abs_error']:.2f}, max {s['max_abs_error']:.2f}"
                           for name, s in summary["series"].items())
    eff = summary["series"]["efficientnet"]
    iv = summary["intervals"]
    notes = [
        f"Fitted law: {summary['law']['formula']}.",
        "Each network is predicted from its series' base by the law refitted without it (leave-one-out), in top-1 points.",
        f"Mean / max absolute error per series: {per_series}.",
        f"EfficientNet series (paper): mean {eff['mean_abs_error']:.2f}, max {eff['max_abs_error']:.2f} points.",
        f"80% prediction intervals: {iv['formula']}; calibrated on each series held out of the fit in turn "
        f"(normalised jackknife residuals). Coverage: {100 * iv['coverage_series_held_out']:.0f}% of the "
        f"{iv['held_out_networks']} networks of a held-out series (each with q computed without it; mean width "
        f"{iv['mean_width_series_held_out']:.2f} points), {100 * iv['coverage_network_held_out']:.0f}% of networks "
        "held out one at a time (their series' other networks were fitted, so the intervals are wider than they need).",
    ] + [f"Transformer law ({t['protocol']}; fitted on {', '.join(t['series'])} only): leave-one-series-out "
         f"errors, predicted minus published: {t['errors']}; its intervals are at least ±{t['largest_abs_error']:.2f} "
         "points, no coverage claimed." for t in summary["transformer"]]
    return _render("scaling-law estimator, leave-one-out", ["series", "held out", "published %", "predicted %", "error"],
                   rows, notes, fmt)


def _estimate_text(spec: str, depth: float, width: float, resolution: Optional[int], method: str, fmt: Format) -> str:
    estimate = estimate_accuracy(load_spec(spec), depth, width, resolution, method=method)
    if fmt is Format.json:
        return json.dumps(estimate.__dict__, indent=2, allow_nan=False)
    if estimate.top1 is None:
        value = f"score {estimate.score:.3f} (ranking only)"
    else:  # a published figure as its source gives it; an estimate to two decimals, with its interval
        value = f"top-1 {estimate.top1:g}%" if estimate.method == "published" else f"top-1 {estimate.text()}%"
    flag = " [extrapolated]" if estimate.extrapolated else ""
    return f"{value}{flag}\nhow: {estimate.detail}\n"


@app.command()
@friendly
def accuracy(
    spec: Optional[str] = typer.Argument(None, parser=O.SPEC, help="Estimate for this spec (file or zoo name) scaled by the options; "
                                                    "without it, list the published accuracies."),
    depth: Optional[float] = typer.Option(None, "--depth", parser=O.DEPTH_MULTIPLIER,
                                          help="With SPEC: depth multiplier (stage repeats; default 1)."),
    width: Optional[float] = typer.Option(None, "--width", parser=O.WIDTH_MULTIPLIER,
                                          help="With SPEC: width multiplier (channels; default 1)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", parser=O.PIXELS,
                                             help="With SPEC: input size in pixels (default: the spec's)."),
    method: Optional[Method] = typer.Option(None, "--method", "-m",
                                            help="With SPEC: published, scaling-law (default) or proxy."),
    validate: bool = typer.Option(False, "--validate", help="Leave-one-out error of the scaling-law estimator per published series."),
    format: Format = typer.Option(Format.table, "--format", "-f", help="table, markdown or json."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", parser=O.OUTPUT, help="Write to this file (atomically)."),
) -> None:
    """Published top-1 accuracies, the scaling-law estimator's validation, or an estimate for a scaled spec.

    Every number says how it was obtained: published (with its source), scaling-law (fitted on the
    published scaling series), or proxy (a zero-cost score for ranking only).
    """
    check_output_file(output)
    given = [name for name, value in (("--depth", depth), ("--width", width), ("--resolution", resolution),
                                      ("--method", method)) if value is not None]
    if given and (spec is None or validate):
        raise ScalelabError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to the estimate for a "
                            f"SPEC (e.g. `scalelab accuracy efficientnet_b0 --depth 1.2`), not to "
                            f"{'--validate' if validate else 'the published list'}")
    if validate:
        text = _validation_text(format)
    elif spec is not None:
        text = _estimate_text(spec, depth or 1.0, width or 1.0, resolution, (method or Method.scaling_law).value, format)
    else:
        text = _published_text(format)
    emit(text, output)
