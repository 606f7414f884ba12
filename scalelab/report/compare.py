"""`scalelab compare`: several networks side by side, with ratios to the first, in every format.

Rows are networks, columns whole-network figures (``scalelab.analysis.figures``); a second table gives
each figure as a multiple of the first network's, and top-1 as a difference in points. Tables show
human units; JSON and CSV carry the exact integers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from scalelab.analysis.ensemble import RULES
from scalelab.analysis.figures import NetworkFigures
from scalelab.report.compare_plot import comparison_svg
from scalelab.report.html import render_page
from scalelab.report.table import print_prose, print_whole, rendered, text_console
from scalelab.report.units import human_bytes, human_count
from scalelab.scaling.accuracy.ensemble_gain import fitted_gain
from scalelab.scaling.accuracy.protocols import top1_difference
from scalelab.scaling.ensembles import pareto

if TYPE_CHECKING:
    from scalelab.scaling.ensembles import Variant


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _top1(v) -> str:
    return "-" if v is None else f"{v:.2f}"


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    unit: str
    human: Callable


METRICS = (
    Metric("params", "Params", "parameters", human_count),
    Metric("macs", "MACs", "multiply-accumulates per batch (conv, linear; bias excluded)", human_count),
    Metric("other_ops", "Other ops", "operations per batch (norm, activation, pool, add, gating, copy)", human_count),
    Metric("activation_peak_bytes", "Act. peak", "bytes of activations alive at once at inference", human_bytes),
    Metric("inference_bytes", "Infer. mem", "bytes: weights + activation peak", human_bytes),
    Metric("training_bytes", "Train mem", "bytes of one training step: weights + gradients + optimizer state + saved activations", human_bytes),
    Metric("predicted_ms", "Pred. ms", "milliseconds per batch, predicted on the device profile", _ms),
    Metric("top1", "Top-1 %", "published top-1 accuracy, percent (each network's spec reference)", _top1),
)


@dataclass(frozen=True)
class Comparison:
    networks: tuple[NetworkFigures, ...]
    notes: tuple[str, ...]
    variants: tuple = ()  # scalelab.scaling.ensembles.Variant: ensembles and crops of each network

    @property
    def metrics(self) -> tuple[Metric, ...]:
        with_latency = any(f.predicted_ms is not None for f in self.networks)
        return tuple(m for m in METRICS if m.key != "predicted_ms" or with_latency)

    def value(self, fig: NetworkFigures, key: str):
        return fig.inference_bytes if key == "inference_bytes" else getattr(fig, key)

    def ratio(self, fig: NetworkFigures, key: str) -> Optional[float]:
        """Multiple of the first network's figure; for top-1, the difference in points."""
        mine, first = self.value(fig, key), self.value(self.networks[0], key)
        if mine is None or first is None:
            return None
        if key == "top1":
            return self.top1_difference(fig).points
        return mine / first if first else None

    def top1_difference(self, fig: NetworkFigures):
        """Top-1 against the first network's, like for like where the protocols allow."""
        return top1_difference(self.networks[0], fig)


def comparison(networks: list[NetworkFigures], variants: Sequence[Variant] = ()) -> Comparison:
    first = networks[0]
    notes = [
        f"Conditions: input {' / '.join(sorted({f'{h}x{w}' for h, w in (n.resolution for n in networks)}))}, "
        f"batch {first.batch}, bytes at {first.dtype}, training memory with {first.optimizer}.",
        "Ratios: each figure divided by the first network's (x); top-1 as the difference in points.",
        "Accuracy: published top-1 from each spec's reference (its source and protocol in JSON); '-' where the spec "
        "has none. Top-1 points compare like for like (same dataset, crops, pre-training, distillation) or say not.",
    ]
    notes += [d.note for d in (Comparison(tuple(networks), ()).top1_difference(n) for n in networks[1:]) if d.note]
    if any(n.latency_method for n in networks):
        notes.append(f"Latency: {networks[0].latency_method}.")
    if variants:
        notes.append(f"Ensembles and crops: per image, by the rules: {RULES} Their top-1 (with 80% interval) by the "
                     f"ensemble-gain law: {fitted_gain().describe()}; '*' marks the variants on the accuracy-MACs Pareto front.")
    return Comparison(tuple(networks), tuple(notes), tuple(variants))


def _variant_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    front = set(id(v) for v in pareto(list(c.variants)))
    headers = ["Variant", "Models", "Crops", "MACs/image", "Params", "Top-1 %", "80% interval", "Front"]
    rows = [[v.label, str(v.models), str(v.crops), human_count(v.macs), human_count(v.params), _top1(v.top1),
             "-" if v.low is None else f"[{v.low:.2f}, {v.high:.2f}]" + (" extrapolated" if v.extrapolated else ""),
             "*" if id(v) in front else ""] for v in sorted(c.variants, key=lambda v: v.macs)]
    return headers, rows


def _ratio_text(key: str, r: Optional[float]) -> str:
    if r is None:
        return "-"
    return f"{r:+.2f}" if key == "top1" else f"x{r:.3g}"


def _tables(c: Comparison) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    headers = ["Network", *(m.header for m in c.metrics)]
    rows = [[f.name, *(m.human(c.value(f, m.key)) for m in c.metrics)] for f in c.networks]
    ratio_headers = ["Network", *(m.header if m.key != "top1" else "Top-1 pts" for m in c.metrics)]
    ratio_rows = [[f.name, *(c.top1_difference(f).cell() if m.key == "top1" else _ratio_text(m.key, c.ratio(f, m.key))
                             for m in c.metrics)] for f in c.networks]
    return headers, rows, ratio_headers, ratio_rows


def _units(c: Comparison) -> str:
    return "Units: " + "; ".join(f"{m.header}: {m.unit}" for m in c.metrics) + "."


def _title(c: Comparison) -> str:
    return "scalelab comparison of " + ", ".join(f.name for f in c.networks)


def _rich(c: Comparison):
    from rich.table import Table
    from rich.text import Text


    headers, rows, ratio_headers, ratio_rows = _tables(c)
    console = text_console()  # the width rule of every command (scalelab.report.table)
    tables = [(_title(c), headers, rows), (f"Ratios to {c.networks[0].name}", ratio_headers, ratio_rows)]
    if c.variants:
        tables.append(("Ensembles and crops", *_variant_rows(c)))
    for title, hs, rs in tables:
        table = Table(title=Text(title), title_justify="left", header_style="bold")
        for i, h in enumerate(hs):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
        for r in rs:
            table.add_row(*(Text(x) for x in r))
        print_whole(console, table)
    for note in (*c.notes, _units(c)):
        print_prose(console, note)
    return console


def to_table(c: Comparison) -> str:
    return rendered(_rich(c))


def _html_sections(c: Comparison) -> list[dict]:
    """The tables of the other formats, each cell with its exact value as its sort key."""
    headers, rows, ratio_headers, ratio_rows = _tables(c)
    first = c.networks[0].name
    units = [""] + [m.unit for m in c.metrics]
    ratio_units = [""] + [f"points over {first}" if m.key == "top1" else f"multiple of {first}'s" for m in c.metrics]
    values = [[f.name, *(c.value(f, m.key) for m in c.metrics)] for f in c.networks]
    ratios = [[f.name, *(c.ratio(f, m.key) for m in c.metrics)] for f in c.networks]
    tables = [("Networks", headers, units, rows, values), (f"Ratios to {first}", ratio_headers, ratio_units, ratio_rows, ratios)]
    if c.variants:
        front = {id(v) for v in pareto(list(c.variants))}
        variant_headers, variant_rows = _variant_rows(c)
        keys = [[v.label, v.models, v.crops, v.macs, v.params, v.top1, v.low, int(id(v) in front)]
                for v in sorted(c.variants, key=lambda v: v.macs)]
        tables.append(("Ensembles and crops", variant_headers, [""] * len(variant_headers), variant_rows, keys))
    return [{"caption": caption, "totals": [],
             "headers": [((h, u), i > 0) for i, (h, u) in enumerate(zip(hs, us))],
             "rows": [[(text, "" if key is None else repr(key), i > 0) for i, (text, key) in enumerate(zip(row, key_row))]
                      for row, key_row in zip(rs, ks)]}
            for caption, hs, us, rs, ks in tables]


def to_html(c: Comparison) -> str:
    """One self-contained page like `analyze`'s: sortable tables of the figures, the ratios and the
    variants, the chart `-o x.png` draws (inline SVG), the notes and the units."""
    return render_page("compare.html.j2", title=_title(c), first=c.networks[0].name, sections=_html_sections(c),
                       chart_svg=comparison_svg(c), notes=c.notes, units=[(m.header, m.unit) for m in c.metrics])


def to_markdown(c: Comparison) -> str:
    def table(hs, rs):
        return ["| " + " | ".join(hs) + " |", "|:---|" + "---:|" * (len(hs) - 1), *("| " + " | ".join(r) + " |" for r in rs)]

    headers, rows, ratio_headers, ratio_rows = _tables(c)
    lines = [f"# {_title(c)}", "", *table(headers, rows), "", f"## Ratios to {c.networks[0].name}", "",
             *table(ratio_headers, ratio_rows), ""]
    if c.variants:
        lines += ["## Ensembles and crops", "", *table(*_variant_rows(c)), ""]
    lines += [f"- {n}" for n in (*c.notes, _units(c))]
    return "\n".join(lines) + "\n"


def comparison_dict(c: Comparison) -> dict:
    return {
        "networks": [{**f.as_dict(), "ratio_to_first": {m.key: c.ratio(f, m.key) for m in c.metrics},
                      "top1_like_for_like": c.top1_difference(f).like_for_like} for f in c.networks],
        "first": c.networks[0].name,
        "variants": [v.as_dict() for v in c.variants],
        "units": {m.key: m.unit for m in c.metrics},
        "notes": list(c.notes),
    }


def to_json(c: Comparison) -> str:
    return json.dumps(comparison_dict(c), indent=2) + "\n"


def to_csv(c: Comparison) -> str:
    buf = io.StringIO()
    buf.write(f"# {_title(c)}\n")
    for note in (*c.notes, _units(c)):
        buf.write(f"# {note}\n")
    if c.variants:
        buf.write("# The ensemble and crop variants are in --format json, markdown, table and html.\n")
    writer = csv.writer(buf, lineterminator="\n")
    keys = [m.key for m in c.metrics]
    writer.writerow(["network", *keys, *(f"{k}_ratio" if k != "top1" else "top1_points" for k in keys)])
    for f in c.networks:
        values = [c.value(f, k) for k in keys]
        ratios = [c.ratio(f, k) for k in keys]
        writer.writerow([f.name, *("" if v is None else v for v in values),
                         *("" if r is None else round(r, 6) for r in ratios)])
    return buf.getvalue()


FORMATS = {"table": to_table, "markdown": to_markdown, "json": to_json, "csv": to_csv, "html": to_html}


def render(c: Comparison, fmt: str) -> str:
    return FORMATS[fmt](c)
