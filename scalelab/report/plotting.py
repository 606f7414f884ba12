"""Drawing the charts of ``scalelab.report.charts`` with matplotlib (Agg backend, files only).

matplotlib is imported inside the functions: nothing on the analysis path pays for it."""

from __future__ import annotations

from pathlib import Path

from scalelab.output import write_atomic
from scalelab.report.charts import AccuracyCostChart, BreakdownChart, ScalingCurveChart
from scalelab.report.units import human_bytes, human_count

DPI = 130  # figures are laid out at the resolution they are saved at: labels are placed in its pixels


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def label_tools():
    """``Label`` and ``place_labels`` of ``report.labels``, loaded by the first chart that places
    labels: the placer computes with numpy, which a report without charts never imports."""
    from scalelab.report.labels import Label, place_labels  # numpy: only when a chart places labels

    return Label, place_labels


def save_figure(fig, path: Path, laid_out: bool = False) -> None:
    """Render to memory, then write atomically: a failed draw leaves no partial chart. A figure
    ``laid_out`` already (drawn once without rendering) gets its tight box from the artists' extents;
    bbox_inches="tight" would draw it once more just to find it."""
    import io

    buffer = io.BytesIO()
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1) if laid_out else "tight"
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=DPI, bbox_inches=box)
    write_atomic(Path(path), buffer.getvalue())


def draw_accuracy_vs_cost(chart: AccuracyCostChart, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 6), dpi=DPI)
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
            _error_bars(ax, chart.pareto, chart.pareto_intervals, "tab:orange")
        if chart.budget is not None:
            ax.axvline(chart.budget, ls="--", c="tab:red", lw=1, label=chart.budget_label)
        # hollow, under the published points: the star never hides one
        ax.scatter([chart.chosen.x], [chart.chosen.y], marker="*", s=260, facecolors="none", edgecolors="tab:red",
                   linewidths=1.5, label=chart.chosen.label, zorder=4)
        if chart.chosen_interval is not None:
            _error_bars(ax, [(chart.chosen.x, chart.chosen.y)], [chart.chosen_interval], "tab:red")
        if chart.references:
            ax.scatter([p.x for p in chart.references], [p.y for p in chart.references], marker="s", s=22,
                       c="tab:green", label="published networks", zorder=5)
        ax.set_xscale("log")
        if chart.x_unit == "ms":  # plain milliseconds, not 10^0 with minor ticks unlabelled
            from matplotlib.ticker import FuncFormatter, LogLocator

            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
        ax.set_title(chart.title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        # outside the axes: inside it covered published points (alexnet) whatever corner it took
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        if chart.notes:
            fig.text(0.01, -0.02, "\n".join(chart.notes), fontsize=7, va="top", color="0.3")
        if chart.references:
            _label_references(ax, chart)
        save_figure(fig, path, laid_out=bool(chart.references))
    finally:
        plt.close(fig)
    return Path(path)


def _error_bars(ax, points, intervals, color) -> None:
    """Vertical bars from low to high (80% prediction intervals) at each point that has one."""
    for (x, y), interval in zip(points, intervals):
        if interval and interval[0] is not None:
            ax.errorbar([x], [y], yerr=[[y - interval[0]], [interval[1] - y]], fmt="none", ecolor=color,
                        elinewidth=0.8, capsize=2, alpha=0.7, zorder=2)


def draw_scaling_curves(chart: ScalingCurveChart, path: Path) -> Path:
    """Accuracy (with its 80% band) above cost along the curve; cost alone when the report's method
    gave no accuracy along it (no empty panel)."""
    plt = _pyplot()
    if chart.accuracy is not None:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, dpi=DPI)
    else:
        fig, bottom = plt.subplots(1, 1, figsize=(8, 4), dpi=DPI)
        top = None
    try:
        if top is not None:
            top.plot(chart.phi, chart.accuracy, "-o", ms=3, c="tab:blue", label="estimate")
            if chart.low is not None:
                top.fill_between(chart.phi, chart.low, chart.high, color="tab:blue", alpha=0.15,
                                 label="80% prediction interval")
                top.legend(fontsize=8, loc="lower right")
            top.set_ylabel(chart.accuracy_label)
        (top or bottom).set_title(chart.title, fontsize=10)
        bottom.plot(chart.phi, chart.macs, "-o", ms=3, c="tab:purple", label="MACs")
        bottom.plot(chart.phi, chart.params, "-s", ms=3, c="tab:brown", label="parameters")
        bottom.set_yscale("log")
        bottom.set_ylabel("count (log scale)")
        bottom.set_xlabel("phi (depth = alpha^phi, width = beta^phi, resolution = gamma^phi)")
        bottom.legend(fontsize=8, loc="upper left")  # fixed: "best" could move onto a label at the next draw
        for ax in (a for a in (top, bottom) if a is not None):
            ax.grid(True, which="both", alpha=0.25)
            if chart.chosen_phi is not None:
                ax.axvline(chart.chosen_phi, ls="--", c="tab:red", lw=1)
        if top is None:
            fig.text(0.01, -0.05, "accuracy is not estimated along the curve for this report's accuracy method",
                     fontsize=7, va="top", color="0.3")
        fig.text(0.01, -0.01, f"coefficients: {chart.source}", fontsize=7, va="top", color="0.3")
        if chart.chosen_phi is not None:
            _label_chosen_phi(chart, top, bottom)
        save_figure(fig, path, laid_out=True)
    finally:
        plt.close(fig)
    return Path(path)


def _label_chosen_phi(chart: ScalingCurveChart, top, bottom) -> None:
    """Name the search's result on its phi line, at the curve's lowest value, clear of curves and legend."""
    Label, place_labels = label_tools()

    phi = chart.chosen_phi
    assert phi is not None  # the caller labels a chosen phi only
    if top is not None:
        assert chart.accuracy is not None  # the top panel is drawn only when the curve has accuracy
        where, values = top, chart.accuracy
    else:
        where, values = bottom, chart.params
    label = Label(phi, min(values), f"this search's result: phi = {phi:.2f}", color="tab:red", fontsize=8)
    lines = [list(zip(chart.phi, values))]
    if top is not None and chart.low is not None:
        assert chart.high is not None  # an interval has both ends or neither
        lines += [list(zip(chart.phi, chart.low)), list(zip(chart.phi, chart.high))]
    place_labels(where, [label], lines=lines, first="above-right")


def _label_references(ax, chart: AccuracyCostChart) -> None:
    """Name each published network next to its point (one label per name), clear of the other labels,
    the legend, the chosen network's star and, where possible, the trials and the front."""
    Label, place_labels = label_tools()

    seen, labels = set(), []
    for p in sorted(chart.references, key=lambda p: (p.x, p.y, p.label)):
        if p.label not in seen:
            seen.add(p.label)
            labels.append(Label(p.x, p.y, p.label, color="tab:green"))
    trials = [(x, y, 3.0) for x, y in [*chart.feasible, *chart.infeasible]]
    star = (chart.chosen.x, chart.chosen.y, 10.0)
    lines = [chart.pareto]
    if chart.budget is not None:
        lines.append([(chart.budget, y) for y in ax.get_ylim()])
    place_labels(ax, labels, points=[*trials, star], lines=lines)


# --------------------------------------------------------------------------------------------------
# Per-block breakdown


def _format(value, unit: str) -> str:
    if unit == "bytes":
        return human_bytes(value)
    if unit == "ms":
        return f"{value:.3f} ms"
    return human_count(value)


def _tick_formatter(unit: str):
    from matplotlib.ticker import FuncFormatter

    if unit == "ms":
        return FuncFormatter(lambda v, _: f"{v:g}")
    return FuncFormatter(lambda v, _: _format(int(v) if float(v).is_integer() else v, unit))


def _binary_locator(limit: float):
    """Ticks at round numbers of KiB / MiB / GiB (matplotlib's default steps give 977 KiB)."""
    from matplotlib.ticker import MultipleLocator

    scale = 1
    while limit / scale >= 1024:
        scale *= 1024
    raw = limit / scale / 5
    steps = (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000)
    return MultipleLocator(next((s for s in steps if s >= raw), 1000) * scale)


def draw_breakdown(chart: BreakdownChart, path: Path) -> Path:
    """One horizontal bar panel per metric, blocks top to bottom in execution order; each bar says its
    value and its share of the network's total, and the largest bar of each panel is darker."""
    plt = _pyplot()
    fig = _breakdown_figure(plt, chart)
    try:
        save_figure(fig, path, laid_out=True)
    finally:
        plt.close(fig)
    return Path(path)


def save_and_close(fig, path: Path) -> Path:
    """Write a figure laid out with its labels placed, then release it."""
    try:
        save_figure(fig, path, laid_out=True)
    finally:
        _pyplot().close(fig)
    return Path(path)


def breakdown_svg(chart: BreakdownChart) -> str:
    """The breakdown chart as an ``<svg>`` element to embed in a page."""
    return figure_svg(_breakdown_figure(_pyplot(), chart))


def figure_svg(fig) -> str:
    """A figure as an ``<svg>`` element to embed in a page (text drawn as paths: no fonts needed); closes it."""
    import io

    plt = _pyplot()
    try:
        buffer = io.StringIO()
        with plt.rc_context({"svg.hashsalt": "scalelab"}):  # the same chart gives the same bytes
            fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    finally:
        plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE, which are not allowed inside HTML


def _label_bars(ax, panel, positions: list[int]) -> None:
    """Each bar's value and share, right of its end where there is room, never on a bar."""
    Label, place_labels = label_tools()

    labels = [Label(value, y, f"{_format(value, panel.unit)} ({share:.1f}%)")
              for y, value, share in zip(positions, panel.values, panel.shares)]
    bars = [(0, y - 0.35, value, y + 0.35) for y, value in zip(positions, panel.values)]
    place_labels(ax, labels, rects=bars, marker_px=0.0)


def _breakdown_figure(plt, chart: BreakdownChart):
    import textwrap

    n = len(chart.rows)
    width = 1.6 + 3.6 * len(chart.panels)
    fig, axes = plt.subplots(1, len(chart.panels), figsize=(width, 1.4 + 0.26 * n), sharey=True, squeeze=False,
                             dpi=DPI)
    colors = {"macs": "tab:purple", "params": "tab:brown", "activations": "tab:cyan", "latency": "tab:red"}
    try:
        positions = list(range(n))
        for ax, panel in zip(axes[0], chart.panels):
            peak = max(panel.values) if panel.values else 0
            bar_colors = [colors.get(panel.metric, "tab:blue") for _ in panel.values]
            ax.barh(positions, panel.values, color=bar_colors, alpha=0.55, height=0.7)
            if peak > 0:  # every block tied for the largest share
                tops = [y for y, v in zip(positions, panel.values) if v == peak]
                ax.barh(tops, [peak] * len(tops), color=colors.get(panel.metric, "tab:blue"), height=0.7)
            ax.set_xlim(0, (peak or 1) * 1.55)  # room for the value text right of the longest bar
            ax.set_title(f"{panel.title}\ntotal {_format(panel.total, panel.unit)}", fontsize=9)
            ax.grid(True, axis="x", alpha=0.25)
            ax.tick_params(axis="x", labelsize=7)
            ax.xaxis.set_major_formatter(_tick_formatter(panel.unit))
            if panel.unit == "bytes":
                ax.xaxis.set_major_locator(_binary_locator((peak or 1) * 1.55))
        first = axes[0][0]
        first.set_yticks(positions)
        first.set_yticklabels([f"{name} ({kind})" for name, kind in zip(chart.rows, chart.kinds)], fontsize=7.5)
        first.invert_yaxis()  # execution order reads top to bottom
        fig.suptitle(chart.title, fontsize=11)
        fig.tight_layout()
        wrap = max(60, int(width * 15))
        notes = "\n".join(line for note in chart.notes for line in textwrap.wrap(note, wrap))
        fig.text(0.01, 0.0, notes, fontsize=6.5, va="top", color="0.3")
        for ax, panel in zip(axes[0], chart.panels):  # once laid out: labels are placed in its pixels
            _label_bars(ax, panel, positions)
    except BaseException:
        plt.close(fig)
        raise
    return fig
