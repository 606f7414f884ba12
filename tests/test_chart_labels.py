"""Chart labels never collide. Every chart kind the README shows is drawn through the CLI from the real
data of its report, at the size the README's image has, and read back from matplotlib's rendered text
extents: no label overlaps another label, another text or a legend; every label lies inside the figure
and its axes; every point the chart promises to name is named, at 7 pt or more; a label moved away
from its point has a leader line to it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from scalelab.analysis import analyze
from scalelab.report.charts import reference_points
from scalelab.report.labels import GID, LEADER_GID, Label, place_labels
from tests.cli_helpers import invoke

REPORTS = Path(__file__).resolve().parents[1] / "reports"
TWO_STEP = REPORTS / "efficientnet_b0-two-step-hard-400MFLOPs-scaling-law.json"
DIRECT = REPORTS / "efficientnet_b0-direct-hard-400MFLOPs-scaling-law.json"
ENSEMBLES = REPORTS / "efficientnet_b0-two-step-hard-2GFLOPs-scaling-law-x1_2_3-crops1_10.json"


@pytest.fixture
def figures(monkeypatch):
    """Every figure the chart code saves, kept for reading back once written."""
    from scalelab.report import plotting

    kept, save = [], plotting.save_figure

    def keep(fig, path, laid_out=False):
        save(fig, path, laid_out)
        kept.append((fig, Path(path)))

    monkeypatch.setattr(plotting, "save_figure", keep)
    return kept


def drawn(figures, *args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    (fig, path), = figures
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return fig


def area(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def check_labels(fig, expected: Counter) -> list:
    """The rules of every chart; returns the labels (matplotlib annotations) for further checks."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.legend import Legend
    from matplotlib.text import Text

    renderer = FigureCanvasAgg(fig).get_renderer()  # a closed figure keeps no canvas: render it again
    fig.draw(renderer)
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    labels = [t for t in texts if t.get_gid() == GID]
    assert Counter(t.get_text() for t in labels) == expected  # every promised point named, none dropped
    boxes = [t.get_window_extent(renderer) for t in labels]
    others = [t.get_window_extent(renderer) for t in texts if t.get_gid() != GID]
    others += [legend.get_window_extent(renderer) for legend in fig.findobj(Legend)]
    anchors = [t.axes.transData.transform(t.xy) for t in labels]
    leaders = [line.get_xydata() for ax in fig.axes for line in ax.lines if line.get_gid() == LEADER_GID]
    for i, (label, box) in enumerate(zip(labels, boxes)):
        assert label.get_fontsize() >= 7, label.get_text()
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
        axes = label.axes.bbox
        assert axes.x0 <= box.x0 and box.x1 <= axes.x1 and axes.y0 <= box.y0 and box.y1 <= axes.y1, label.get_text()
        for j, other in enumerate(boxes[i + 1:], i + 1):
            assert area(box, other) == 0, (label.get_text(), labels[j].get_text())
        for other in others:
            assert area(box, other) == 0, (label.get_text(), "on a text or legend")
        for x, y in anchors:  # no label hides a labelled point
            assert not (box.x0 + 1 < x < box.x1 - 1 and box.y0 + 1 < y < box.y1 - 1), label.get_text()
        x, y = anchors[i]
        gap = max(box.x0 - x, x - box.x1, 0.0), max(box.y0 - y, y - box.y1, 0.0)
        if max(gap) > 8:  # away from its point: a leader line runs from the point to the label
            ends = [label.axes.transData.transform(line[[0, -1]]) for line in leaders if line.shape[0] == 2
                    and tuple(line[0]) == tuple(label.xy)]
            assert any(box.x0 - 1 <= ex <= box.x1 + 1 and box.y0 - 1 <= ey <= box.y1 + 1 for _, (ex, ey) in ends), \
                label.get_text()
    return labels


def figure_size(fig):
    return tuple(round(v, 2) for v in fig.get_size_inches())


@pytest.mark.parametrize("report", [TWO_STEP, DIRECT], ids=["two-step", "direct"])
def test_accuracy_vs_macs_of_the_400MFLOPs_searches_names_every_published_network(figures, tmp_path, report):
    fig = drawn(figures, "plot", report, "--chart", "accuracy", "-o", tmp_path / "a.png")
    assert figure_size(fig) == (11, 6)
    check_labels(fig, Counter({p.label for p in reference_points("macs")}))


def test_scaling_curves_name_the_search_result(figures, tmp_path):
    phi = json.loads(TWO_STEP.read_text())["two_step"]["phi"]
    fig = drawn(figures, "plot", TWO_STEP, "--chart", "scaling", "-o", tmp_path / "s.png")
    assert figure_size(fig) == (8, 7)
    check_labels(fig, Counter([f"this search's result: phi = {phi:.2f}"]))


def variant_names(models, crops, extrapolated=False) -> str:
    return " ".join(([f"x{models}"] if models > 1 else []) + ([f"{crops}c"] if crops > 1 else [])
                    + (["*"] if extrapolated else []))


def test_the_2GFLOPs_ensembles_chart_names_every_ensemble_and_crop_candidate(figures, tmp_path):
    from scalelab.report.charts import ensemble_chart

    variants = ensemble_chart(json.loads(ENSEMBLES.read_text())).variants
    named = [v for v in variants if v.models > 1 or v.crops > 1 or v.extrapolated]
    assert len(named) >= 10  # the stacks of the README's image near the 2 G budget
    fig = drawn(figures, "plot", ENSEMBLES, "--chart", "ensembles", "-o", tmp_path / "e.png")
    assert figure_size(fig) == (11, 6.5)
    check_labels(fig, Counter(variant_names(v.models, v.crops, v.extrapolated) for v in named))


def test_ensembles_against_bigger_resnets_names_all_25_variants(figures, tmp_path):
    fig = drawn(figures, "compare", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                "--ensembles", "1,2,3", "--crops", "1,10", "-o", tmp_path / "v.png")
    # five networks, each as 2 and 3 copies, on 10 crops, and both; none beyond the law's fitted range
    expected = Counter(variant_names(k, n) for _ in range(5) for k in (1, 2, 3) for n in (1, 10) if (k, n) != (1, 1))
    assert sum(expected.values()) == 25
    check_labels(fig, expected)


def test_compare_bars_name_every_ratio_and_network(figures, tmp_path):
    args = ("compare", "plain34", "resnet34", "resnet18", "--device", "t4")
    ratios = [n["ratio_to_first"] for n in json.loads(invoke(*args, "-f", "json").output)["networks"]]
    bars = ("params", "macs", "activation_peak_bytes", "training_bytes", "predicted_ms")
    expected = Counter(f"x{r[key]:.3g}" for r in ratios for key in bars) + Counter(["plain34", "resnet34", "resnet18"])
    fig = drawn(figures, *args, "-o", tmp_path / "c.png")
    assert figure_size(fig) == (13, 5)
    check_labels(fig, expected)


def label_texts(fig) -> Counter:
    from matplotlib.text import Text

    return Counter(t.get_text() for t in fig.findobj(Text) if t.get_gid() == GID)


@pytest.mark.parametrize("name, extra", [("resnet50", ()), ("efficientnet_b0", ("--device", "t4"))])
def test_breakdown_names_every_bar(figures, tmp_path, name, extra):
    fig = drawn(figures, "plot", name, "--breakdown", "all", *extra, "-o", tmp_path / "b.png")
    rows = [b for b in analyze(name).blocks if not b.training_only]
    texts = label_texts(fig)
    assert sum(texts.values()) == len(rows) * (4 if extra else 3)  # a value per bar, per panel
    check_labels(fig, texts)
    total = sum(b.cost.macs for b in rows)
    assert any(text.endswith(f"({100 * rows[0].cost.macs / total:.1f}%)") for text in texts)  # the stem's share


def test_labels_of_points_on_one_spot_all_find_room(tmp_path):
    """Twenty-five labels on one point, beside a legend inside the axes: each is placed, none touch."""
    from scalelab.report.plotting import DPI, _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=DPI)
    try:
        ax.plot([0, 10], [0, 10], label="a line")
        ax.legend(loc="upper left")
        labels = [Label(5.0, 5.0, f"network {i}") for i in range(25)]
        place_labels(ax, labels)
        check_labels(fig, Counter(label.text for label in labels))
        first = [t.get_position() for t in fig.findobj(lambda a: a.get_gid() == GID)]
    finally:
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=DPI)
    try:
        ax.plot([0, 10], [0, 10], label="a line")
        ax.legend(loc="upper left")
        place_labels(ax, labels)
        again = [t.get_position() for t in fig.findobj(lambda a: a.get_gid() == GID)]
    finally:
        plt.close(fig)
    assert again == first  # deterministic


def test_a_label_below_7pt_is_refused():
    from scalelab.report.plotting import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match="7"):
            place_labels(ax, [Label(0, 0, "tiny", fontsize=6)])
    finally:
        plt.close(fig)
