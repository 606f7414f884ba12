"""The chart of a comparison: each figure as a multiple of the first network's (grouped bars), and
published top-1 against MACs. matplotlib is imported inside the function (files only, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from scalelab.report.plotting import DPI, _pyplot, figure_svg, label_tools, save_and_close
from scalelab.scaling.ensembles import pareto

if TYPE_CHECKING:  # compare draws its chart with comparison_svg: this side needs the type only
    from scalelab.report.compare import Comparison

BAR_METRICS = ("params", "macs", "activation_peak_bytes", "training_bytes", "predicted_ms")


def bar_groups(c: Comparison) -> tuple[list[str], dict[str, list[float]]]:
    """(metric headers, network -> ratio per metric): the data the grouped bars draw."""
    metrics = [m for m in c.metrics if m.key in BAR_METRICS]
    return [m.header for m in metrics], {f.name: [c.ratio(f, m.key) or 0.0 for m in metrics] for f in c.networks}


def accuracy_points(c: Comparison) -> list[tuple[str, float, float]]:
    """(network, MACs, top-1) of the networks with a published top-1."""
    return [(f.name, f.macs, f.top1) for f in c.networks if f.top1 is not None]


def draw_comparison(c: Comparison, path: Path) -> Path:
    return save_and_close(_comparison_figure(c), path)


def comparison_svg(c: Comparison) -> str:
    """The chart `compare -o x.png` draws, as an ``<svg>`` element for the HTML page."""
    return figure_svg(_variant_figure(*_variant_args(c)) if c.variants else _comparison_figure(c))


def _comparison_figure(c: Comparison):
    Label, place_labels = label_tools()

    plt = _pyplot()
    headers, groups = bar_groups(c)
    points = accuracy_points(c)
    fig, axes = plt.subplots(1, 2 if len(points) >= 2 else 1, figsize=(13 if len(points) >= 2 else 8, 5),
                             squeeze=False, gridspec_kw={"width_ratios": [3, 2]} if len(points) >= 2 else None, dpi=DPI)
    try:
        ax = axes[0][0]
        width = 0.8 / len(groups)
        bar_labels, bar_boxes = [], []
        for i, (name, ratios) in enumerate(groups.items()):
            xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(headers))]
            ax.bar(xs, ratios, width, label=name)
            bar_labels += [Label(x, r, f"x{r:.3g}", fontsize=7) for x, r in zip(xs, ratios)]
            bar_boxes += [(x - width / 2, 0, x + width / 2, r) for x, r in zip(xs, ratios)]
        ax.axhline(1.0, c="0.3", lw=0.8, ls="--")
        ax.set_xticks(range(len(headers)), headers)
        ax.set_ylabel(f"multiple of {c.networks[0].name}")
        ax.set_title(f"Cost relative to {c.networks[0].name} (batch {c.networks[0].batch}, {c.networks[0].dtype})", fontsize=10)
        ax.margins(y=0.15)  # room above the tallest bar for its label
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.08), ncols=len(groups), frameon=False)
        ax.grid(True, axis="y", alpha=0.25)
        if len(points) >= 2:
            ax2 = axes[0][1]
            for name, macs, top1 in points:
                ax2.scatter([macs], [top1], s=40, zorder=3)
            ax2.set_xscale("log")
            ax2.set_xlabel("MACs per batch (log)")
            ax2.set_ylabel("published top-1 %")
            ax2.set_title("Accuracy vs cost", fontsize=10)
            ax2.grid(True, which="both", alpha=0.25)
            ax2.margins(x=0.25, y=0.2)
        fig.tight_layout()
        place_labels(ax, bar_labels, rects=bar_boxes, marker_px=0.0, first="above")
        if len(points) >= 2:
            place_labels(ax2, [Label(macs, top1, name, fontsize=8) for name, macs, top1 in points], marker_px=5.0)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _variant_args(c: Comparison) -> tuple:
    return (list(c.variants), [f.name for f in c.networks], "single networks (published top-1)",
            "ImageNet top-1 % (single: published; ensembles/crops: estimated, 80% interval)")


def draw_variants(c: Comparison, path: Path) -> Path:
    """Top-1 against MACs per image for every network and its ensembles and crops, with 80% intervals
    and the Pareto front: where a single bigger network sits above an ensemble of the same cost."""
    return save_and_close(_variant_figure(*_variant_args(c)), path)


def draw_ensemble_chart(chart, path: Path) -> Path:
    """A search's ``report.charts.EnsembleChart``: the best candidates of each (models, crops) searched."""
    return save_and_close(_variant_figure(chart.variants, chart.groups, "single networks (best within the budgets)",
                                          chart.y_label, title=chart.title, budget=chart.budget, notes=chart.notes), path)


def _variant_figure(variants: list, groups: list[str], singles_label: str, y_label: str, *,
                    title: str = "One bigger network or an ensemble of smaller ones, at the same cost",
                    budget: Optional[tuple[float, str]] = None, notes: Sequence[str] = ()):
    """The chart of ``scaling.ensembles.Variant`` points, coloured by ``groups`` (their ``network``):
    marker shape by ensemble size, hollow for multi-crop, 80% intervals, the Pareto front, the single
    networks joined by a dashed line, and optionally a budget (x, label) as a vertical line. ``compare``
    draws networks and their variants; ``scale`` the best candidates of each (models, crops) searched."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 6.5), dpi=DPI)
    markers = {1: "o", 2: "s", 3: "^", 4: "D", 5: "v"}
    try:
        colors = {name: f"C{i % 10}" for i, name in enumerate(groups)}
        for v in (v for v in variants if v.top1 is not None):
            err = [[v.top1 - v.low], [v.high - v.top1]]
            face = colors[v.network] if v.crops == 1 else "white"
            ax.errorbar([v.macs], [v.top1], yerr=err, fmt=markers.get(v.models, "P"), ms=9 if v.single else 7,
                        mfc=face, mec=colors[v.network], ecolor=colors[v.network], elinewidth=0.8, capsize=2, zorder=3)
        front = pareto(list(variants))
        ax.plot([v.macs for v in front], [v.top1 for v in front], "-", c="0.4", lw=1, zorder=2,
                label="Pareto front (accuracy vs MACs)")
        singles = sorted((v for v in variants if v.single and v.top1 is not None), key=lambda v: v.macs)
        ax.plot([v.macs for v in singles], [v.top1 for v in singles], "--", c="black", lw=1.2, zorder=2,
                label=singles_label)
        if budget is not None:
            ax.axvline(budget[0], ls="--", c="tab:red", lw=1, label=budget[1])
        for name, color in colors.items():
            ax.plot([], [], "o", c=color, label=name)
        ax.plot([], [], "s", mfc="0.6", mec="0.6", label="marker shape: ensemble size (o 1, s 2, ^ 3 ...)")
        ax.plot([], [], "o", mfc="white", mec="0.3", label="hollow: multi-crop")
        if any(v.extrapolated for v in variants):
            ax.plot([], [], " ", label="*: extrapolated estimate")
        ax.set_xscale("log")
        ax.set_xlabel("MACs per image, all models and crops (log)")
        ax.set_ylabel(y_label)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        if notes:
            import textwrap

            fig.text(0.01, -0.02, "\n".join(textwrap.fill(n, 170) for n in notes), fontsize=7, va="top", color="0.3")
        fig.tight_layout()
        _label_variants(ax, variants, colors)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _variant_text(v) -> str:
    """What names an ensemble or multi-crop point (or an extrapolated single one): 'x2 10c *'."""
    return " ".join(([f"x{v.models}"] if v.models > 1 else []) + ([f"{v.crops}c"] if v.crops > 1 else [])
                    + (["*"] if v.extrapolated else []))


def _label_variants(ax, variants: list, colors: dict) -> None:
    """Name every ensemble, multi-crop and extrapolated point, clear of the markers and error bars."""
    Label, place_labels = label_tools()

    drawn = [v for v in variants if v.top1 is not None]
    named = [v for v in drawn if not v.single or v.extrapolated]
    labels = [Label(v.macs, v.top1, _variant_text(v), color=colors[v.network]) for v in named]
    singles = [(v.macs, v.top1, 5.0) for v in drawn if v.single and not v.extrapolated]
    bars = [[(v.macs, v.low), (v.macs, v.high)] for v in drawn]
    place_labels(ax, labels, points=singles, lines=bars, marker_px=5.0)
