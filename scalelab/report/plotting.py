"""Drawing the charts of ``scalelab.report.charts`` with matplotlib (Agg backend, files only).

matplotlib is imported inside the functions: nothing on the analysis path pays for it."""

from __future__ import annotations

from pathlib import Path

from scalelab.output import write_atomic
from scalelab.report.charts import AccuracyCostChart, ScalingCurveChart


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """Render to memory, then write atomically: a failed draw leaves no partial chart."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=130, bbox_inches="tight")
    write_atomic(Path(path), buffer.getvalue())


def draw_accuracy_vs_cost(chart: AccuracyCostChart, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 6))
    try:
        if chart.infeasible:
            xs, ys = zip(*chart.infeasible)
            ax.scatter(xs, ys, s=12, c="0.75", label="trials over budget", zorder=1)
        if chart.feasible:
            xs, ys = zip(*chart.feasible)
            ax.scatter(xs, ys, s=14, c="tab:blue", alpha=0.7, label="trials within budget", zorder=2)
        if chart.pareto:
            xs, ys = zip(*chart.pareto)
            ax.plot(xs, ys, "-o", c="tab:orange", ms=4, lw=1.5, label=chart.pareto_label, zorder=3)
        if chart.references:
            ax.scatter([p.x for p in chart.references], [p.y for p in chart.references], marker="s", s=22,
                       c="tab:green", label="published networks", zorder=3)
            placed: set = set()
            for p in chart.references:
                if p.label in placed:
                    continue
                placed.add(p.label)
                ax.annotate(p.label, (p.x, p.y), textcoords="offset points", xytext=(4, -9), fontsize=7, color="tab:green")
        if chart.budget is not None:
            ax.axvline(chart.budget, ls="--", c="tab:red", lw=1, label="budget")
        ax.scatter([chart.chosen.x], [chart.chosen.y], marker="*", s=260, c="tab:red", edgecolors="black",
                   label=chart.chosen.label, zorder=5)
        ax.set_xscale("log")
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
        ax.set_title(chart.title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="lower right")
        if chart.notes:
            fig.text(0.01, -0.02, "\n".join(chart.notes), fontsize=7, va="top", color="0.3")
        _save(fig, path)
    finally:
        plt.close(fig)
    return Path(path)


def draw_scaling_curves(chart: ScalingCurveChart, path: Path) -> Path:
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    try:
        if chart.accuracy is not None:
            top.plot(chart.phi, chart.accuracy, "-o", ms=3, c="tab:blue")
            top.set_ylabel(chart.accuracy_label)
        else:
            top.text(0.5, 0.5, "accuracy not estimated along the curve for this report's accuracy method",
                     ha="center", va="center", transform=top.transAxes, fontsize=9, color="0.4")
        top.set_title(chart.title, fontsize=10)
        bottom.plot(chart.phi, chart.macs, "-o", ms=3, c="tab:purple", label="MACs")
        bottom.plot(chart.phi, chart.params, "-s", ms=3, c="tab:brown", label="parameters")
        bottom.set_yscale("log")
        bottom.set_ylabel("count (log scale)")
        bottom.set_xlabel("phi (depth = alpha^phi, width = beta^phi, resolution = gamma^phi)")
        bottom.legend(fontsize=8)
        for ax in (top, bottom):
            ax.grid(True, which="both", alpha=0.25)
            if chart.chosen_phi is not None:
                ax.axvline(chart.chosen_phi, ls="--", c="tab:red", lw=1)
        if chart.chosen_phi is not None and chart.accuracy is not None:
            top.annotate(f"chosen phi = {chart.chosen_phi:.2f}", (chart.chosen_phi, min(chart.accuracy)),
                         textcoords="offset points", xytext=(4, 4), fontsize=8, color="tab:red")
        fig.text(0.01, -0.01, f"coefficients: {chart.source}", fontsize=7, va="top", color="0.3")
        _save(fig, path)
    finally:
        plt.close(fig)
    return Path(path)
