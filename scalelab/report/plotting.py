"""Drawing the charts of ``scalelab.report.charts`` with matplotlib (Agg backend, files only).

matplotlib is imported inside the functions: nothing on the analysis path pays for it."""

from __future__ import annotations

from pathlib import Path

from scalelab.output import write_atomic
from scalelab.report.charts import AccuracyCostChart, BreakdownChart, ScalingCurveChart

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, laid_out: bool = False) -> None:
    """Render to memory, then write atomically: a failed draw leaves no partial chart. A figure
    ``laid_out`` already (drawn once without rendering) gets its tight box from the artists' extents;
    bbox_inches="tight" would draw it once more just to find it."""
    import io

    buffer = io.BytesIO()
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1) if laid_out else "tight"
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=130, bbox_inches=box)
    write_atomic(Path(path), buffer.getvalue())


def draw_accuracy_vs_cost(chart: AccuracyCostChart, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 6))
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
        legend = ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        if chart.references:
            _label_references(fig, ax, chart, legend)
        if chart.notes:
            fig.text(0.01, -0.02, "\n".join(chart.notes), fontsize=7, va="top", color="0.3")
        _save(fig, path, laid_out=bool(chart.references))
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
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    else:
        fig, bottom = plt.subplots(1, 1, figsize=(8, 4))
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
        bottom.legend(fontsize=8)
        for ax in (a for a in (top, bottom) if a is not None):
            ax.grid(True, which="both", alpha=0.25)
            if chart.chosen_phi is not None:
                ax.axvline(chart.chosen_phi, ls="--", c="tab:red", lw=1)
        if chart.chosen_phi is not None:
            where = top if top is not None else bottom
            y = min(chart.accuracy) if top is not None else min(chart.params)
            where.annotate(f"this search's result: phi = {chart.chosen_phi:.2f}", (chart.chosen_phi, y),
                           textcoords="offset points", xytext=(4, 4), fontsize=8, color="tab:red")
        if top is None:
            fig.text(0.01, -0.05, "accuracy is not estimated along the curve for this report's accuracy method",
                     fontsize=7, va="top", color="0.3")
        fig.text(0.01, -0.01, f"coefficients: {chart.source}", fontsize=7, va="top", color="0.3")
        _save(fig, path)
    finally:
        plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------------------------------------
# Labels that do not collide: a deterministic greedy placement in display coordinates


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _candidates(anchor: tuple[float, float], size: tuple[float, float], gap: float) -> list[Box]:
    """Label boxes around an anchor, nearest first: right, below-right, above-right, left, ...; then
    the same directions further out (a leader line joins a distant label to its point)."""
    (x, y), (w, h) = anchor, size
    boxes = []
    for ring in (1.0, 2.5, 4.5, 7.0, 10.0):
        d = gap * ring
        for x0, y0 in ((x + d, y - h / 2), (x + d, y - h - d / 2), (x + d, y + d / 2), (x - d - w, y - h / 2),
                       (x - w / 2, y - h - d), (x - w / 2, y + d), (x - d - w, y - h - d / 2), (x - d - w, y + d / 2)):
            boxes.append((x0, y0, x0 + w, y0 + h))
    return boxes


def place_labels(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]], obstacles: list[Box],
                 bounds: Box, gap: float = 5.0) -> list[Box]:
    """A box for each label (display pixels) near its anchor, overlapping no other label, no obstacle
    (markers, the legend) and staying inside ``bounds`` where possible: each label, in order, takes the
    nearest free candidate position, or the one with the least overlap when none is free. Deterministic."""
    placed: list[Box] = []
    for anchor, size in zip(anchors, sizes):
        best, best_cost = None, None
        boxes = _candidates(anchor, size, gap)
        # only what lies near the anchor can overlap one of its candidate boxes
        reach = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        near = [o for o in obstacles if _overlap(o, reach) > 0] + [o for o in placed if _overlap(o, reach) > 0]
        for box in boxes:
            outside = size[0] * size[1] - _overlap(box, bounds)
            cost = sum(_overlap(box, o) for o in near) + outside
            if cost == 0:
                best = box
                break
            if best_cost is None or cost < best_cost:
                best, best_cost = box, cost
        placed.append(best)
    return placed


PAD = 2.0  # pixels of margin around each label


def _label_references(fig, ax, chart: AccuracyCostChart, legend) -> None:
    """Name each published network next to its point, without labels covering each other, the
    markers or the legend; a thin line joins a label pushed away from its point."""
    fig.draw_without_rendering()  # fixes the limits and the layout the display coordinates depend on
    renderer = fig.canvas.get_renderer()
    to_display = ax.transData.transform
    seen, points = set(), []
    for p in sorted(chart.references, key=lambda p: (p.x, p.y, p.label)):
        if p.label not in seen:
            seen.add(p.label)
            points.append(p)
    texts = [ax.text(0, 0, p.label, fontsize=7) for p in points]
    sizes = []
    for t in texts:
        extent = t.get_window_extent(renderer)
        sizes.append((extent.width + 2 * PAD, extent.height + 2 * PAD))  # a margin so neighbours never touch
        t.remove()
    anchors = [tuple(to_display((p.x, p.y))) for p in points]
    marker = 4.0  # half the size of a square marker, in pixels
    others = [*chart.feasible, *chart.infeasible, *chart.pareto, (chart.chosen.x, chart.chosen.y)]
    obstacles = [(x - marker, y - marker, x + marker, y + marker)
                 for x, y in (to_display((px, py)) for px, py in [*((p.x, p.y) for p in chart.references), *others])]
    front = [to_display(q) for q in chart.pareto]
    for (x0, y0), (x1, y1) in zip(front, front[1:]):  # the front's line, as points every few pixels
        steps = max(1, int(max(abs(x1 - x0), abs(y1 - y0)) / 4))
        obstacles += [(x0 + (x1 - x0) * i / steps - 1, y0 + (y1 - y0) * i / steps - 1,
                       x0 + (x1 - x0) * i / steps + 1, y0 + (y1 - y0) * i / steps + 1) for i in range(steps + 1)]
    star = to_display((chart.chosen.x, chart.chosen.y))
    obstacles.append((star[0] - 10, star[1] - 10, star[0] + 10, star[1] + 10))
    obstacles.append(tuple(legend.get_window_extent(renderer).extents))
    bounds = tuple(ax.get_window_extent(renderer).extents)
    boxes = place_labels(anchors, sizes, obstacles, bounds)
    to_data = ax.transData.inverted().transform
    for p, (x, y), box in zip(points, anchors, boxes):
        # placed in data coordinates: the axes keep their limits and place from here to the saved file
        ax.text(*to_data((box[0] + PAD, box[1] + PAD)), p.label, fontsize=7, color="tab:green", ha="left",
                va="bottom", clip_on=False)
        far = max(abs(box[0] - x), abs(box[2] - x)) > 14 or max(abs(box[1] - y), abs(box[3] - y)) > 14
        if far:  # a plain leader line to the nearest point of the label's box
            end = (min(max(x, box[0] + PAD), box[2] - PAD), min(max(y, box[1] + PAD), box[3] - PAD))
            (ex, ey), = [to_data(end)]
            ax.plot([p.x, ex], [p.y, ey], "-", c="tab:green", lw=0.5, alpha=0.7, zorder=1, scalex=False, scaley=False)


# --------------------------------------------------------------------------------------------------
# Per-block breakdown


def _format(value, unit: str) -> str:
    from scalelab.report.units import human_bytes, human_count

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
        _save(fig, path)
    finally:
        plt.close(fig)
    return Path(path)


def breakdown_svg(chart: BreakdownChart) -> str:
    """The breakdown chart as an ``<svg>`` element to embed in a page (text drawn as paths: no fonts needed)."""
    import io

    plt = _pyplot()
    fig = _breakdown_figure(plt, chart)
    try:
        buffer = io.StringIO()
        with plt.rc_context({"svg.hashsalt": "scalelab"}):  # the same chart gives the same bytes
            fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    finally:
        plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE, which are not allowed inside HTML


def _breakdown_figure(plt, chart: BreakdownChart):
    import textwrap

    n = len(chart.rows)
    width = 1.6 + 3.6 * len(chart.panels)
    fig, axes = plt.subplots(1, len(chart.panels), figsize=(width, 1.4 + 0.26 * n), sharey=True, squeeze=False)
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
            for y, value, share in zip(positions, panel.values, panel.shares):
                ax.text(value, y, f" {_format(value, panel.unit)} ({share:.1f}%)", va="center", fontsize=6.5)
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
    except BaseException:
        plt.close(fig)
        raise
    return fig
