"""Chart labels that never collide: the one placer every chart uses (search, compare, breakdown).

Each label is measured by matplotlib's own rendered text extent, then put, in order, at the free place
nearest its point: first around the point (right, below-right, above-right, left, below, above, ...,
then the same further out), else anywhere inside the axes, nearest first. A thin leader line joins a
label put away from its point. A place is free when it lies inside the axes, overlaps no placed label,
no other text of the figure, no legend, no labelled point and no leader line, and its own leader line
(if it needs one) crosses no text; among free places, the nearest that covers the fewest other
markers and lines wins. Nothing is dropped or shrunk, and the same chart always gives the same
picture. Boxes are in display pixels; matplotlib is imported by callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

GID = "scalelab-label"  # every placed label carries it, so tests find the labels in a rendered figure
LEADER_GID = "scalelab-leader"
MIN_FONT = 7.0  # points: no chart label is smaller
PAD = 2.0  # pixels of margin around each label, so that neighbours never touch
GAP = 5.0  # pixels between a point and its label in the nearest ring
RINGS = (1.0, 2.5, 4.5, 7.0, 10.0)  # ring distances, in GAPs
LEADER = GAP * RINGS[0] + PAD  # a label further than this from its point gets a leader line
GRID = 4.0  # pixels between the places tried across the axes when no ring place is free
HARD, NAMED, SOFT = 1e6, 1e3, 0.5  # cost per square pixel covered: texts/legends, labelled points, other data

# the directions tried around a point: each gives a label box's lower-left corner from the point (x, y),
# the label's size (w, h) and the ring's distance d
DIRECTIONS = {
    "right": lambda x, y, w, h, d: (x + d, y - h / 2),
    "below-right": lambda x, y, w, h, d: (x + d, y - h - d / 2),
    "above-right": lambda x, y, w, h, d: (x + d, y + d / 2),
    "left": lambda x, y, w, h, d: (x - d - w, y - h / 2),
    "below": lambda x, y, w, h, d: (x - w / 2, y - h - d),
    "above": lambda x, y, w, h, d: (x - w / 2, y + d),
    "below-left": lambda x, y, w, h, d: (x - d - w, y - h - d / 2),
    "above-left": lambda x, y, w, h, d: (x - d - w, y + d / 2),
}
ORDER = tuple(DIRECTIONS)


@dataclass(frozen=True)
class Label:
    """A text naming the point (x, y), in data coordinates."""

    x: float
    y: float
    text: str
    color: str = "black"
    fontsize: float = MIN_FONT


def place_labels(ax, labels: Sequence[Label], *, points: Sequence[tuple[float, float, float]] = (),
                 lines: Sequence[Sequence[tuple[float, float]]] = (), rects: Sequence[tuple] = (),
                 marker_px: float = 4.0, first: str = "right") -> list:
    """Draw each label near its point, as an annotation with gid ``GID``; returns them in order.

    ``points``: other markers to keep clear of where possible, as (x, y, half size in pixels);
    ``lines``: polylines in data coordinates (fronts, curves, error bars) likewise; ``rects``: data
    rectangles (x0, y0, x1, y1), such as bars, that no label should cover; ``marker_px``: half the size
    of a labelled point's marker; ``first``: the direction tried first. Call it once the figure is laid
    out (legend, tight_layout): labels are placed in the display coordinates of that layout."""
    if any(label.fontsize < MIN_FONT for label in labels):
        raise ValueError(f"chart labels are at least {MIN_FONT} pt")
    fig = ax.figure
    ax.set_xlim(ax.get_xlim())  # labels and leaders never move the limits the places were computed in
    ax.set_ylim(ax.get_ylim())
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    to_display = ax.transData.transform
    anchors = [tuple(to_display((label.x, label.y))) for label in labels]
    sizes = [_size(ax, label, renderer) for label in labels]
    hard = _figure_boxes(fig, renderer)
    named = [_square(a, marker_px) for a in anchors] + [_data_rect(to_display, r) for r in rects]
    soft = [_square(to_display((x, y)), r) for x, y, r in points]
    soft += [box for line in lines for box in _samples([to_display(p) for p in line])]
    bounds = tuple(ax.get_window_extent(renderer).extents)
    order = (first, *(d for d in ORDER if d != first))
    out = []
    for label, anchor, size in zip(labels, anchors, sizes):
        box = _best(anchor, size, np.array(hard or [(0, 0, 0, 0)], float), np.array(named, float),
                    np.array(soft or [(0, 0, 0, 0)], float), bounds, order)
        hard.append(box)
        out.append(_draw(ax, label, anchor, box))
        if _needs_leader(anchor, box):
            named += _samples([anchor, _nearest(anchor, box)])  # later labels keep off this leader
    return out


def _size(ax, label: Label, renderer) -> tuple[float, float]:
    text = ax.text(0, 0, label.text, fontsize=label.fontsize)
    extent = text.get_window_extent(renderer)
    text.remove()
    return extent.width + 2 * PAD, extent.height + 2 * PAD


def _figure_boxes(fig, renderer) -> list[tuple]:
    """Every visible text of the figure (titles, ticks, notes, labels placed already) and every legend."""
    from matplotlib.legend import Legend
    from matplotlib.text import Text

    boxes = [tuple(legend.get_window_extent(renderer).extents) for legend in fig.findobj(Legend)]
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.figure is fig:
            extent = text.get_window_extent(renderer)
            if extent.width > 0 and extent.height > 0:
                boxes.append(tuple(extent.extents))
    return boxes


def _square(center, half: float) -> tuple:
    x, y = center
    return x - half, y - half, x + half, y + half


def _data_rect(to_display, rect) -> tuple:
    (x0, y0), (x1, y1) = to_display((rect[0], rect[1])), to_display((rect[2], rect[3]))
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _samples(line) -> list[tuple]:
    """A polyline as small squares every few pixels (an overlap test with boxes only)."""
    out = []
    for (x0, y0), (x1, y1) in pairwise(line):
        steps = max(1, int(max(abs(x1 - x0), abs(y1 - y0)) / 4))
        out += [_square((x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps), 1.0) for i in range(steps + 1)]
    return out


def _rings(anchor, size, order) -> np.ndarray:
    (x, y), (w, h) = anchor, size
    starts = [DIRECTIONS[name](x, y, w, h, GAP * ring) for ring in RINGS for name in order]
    return np.array([(x0, y0, x0 + w, y0 + h) for x0, y0 in starts], float)


def _grid(size, bounds) -> np.ndarray:
    w, h = size
    xs = np.arange(bounds[0] + 1, bounds[2] - w - 1, GRID)
    ys = np.arange(bounds[1] + 1, bounds[3] - h - 1, GRID)
    if not len(xs) or not len(ys):
        return np.empty((0, 4))
    gx, gy = np.meshgrid(xs, ys)
    x0, y0 = gx.ravel(), gy.ravel()
    return np.stack([x0, y0, x0 + w, y0 + h], axis=1)


def _covered(boxes: np.ndarray, obstacles: np.ndarray) -> np.ndarray:
    """For each box, the area it shares with all the obstacles (pixels squared), by chunks of boxes,
    each against the obstacles that reach its region only."""
    out = np.zeros(len(boxes))
    for start in range(0, len(boxes), 1024):
        chunk = boxes[start:start + 1024]
        lo, hi = chunk[:, :2].min(axis=0), chunk[:, 2:].max(axis=0)
        near = obstacles[(obstacles[:, 2] > lo[0]) & (obstacles[:, 0] < hi[0])
                         & (obstacles[:, 3] > lo[1]) & (obstacles[:, 1] < hi[1])]
        if len(near):
            b = chunk[:, None, :]
            w = np.minimum(b[..., 2], near[:, 2]) - np.maximum(b[..., 0], near[:, 0])
            h = np.minimum(b[..., 3], near[:, 3]) - np.maximum(b[..., 1], near[:, 1])
            out[start:start + 1024] = (np.clip(w, 0, None) * np.clip(h, 0, None)).sum(axis=1)
    return out


def _costs(boxes, anchor, hard, named, soft, bounds, leaders: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(cost of each box, whether it is free: inside the bounds, on no text or legend, on no labelled
    point or leader line, and with a leader line, if it needs one, crossing no text or legend)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    outside = area - _covered(boxes, np.array([bounds], float))
    blocked = _covered(boxes, hard) + outside
    on_named = _covered(boxes, named) + (16.0 * _crossings(boxes, anchor, hard) if leaders else 0.0)
    nearest = np.stack([np.clip(anchor[0], boxes[:, 0] + PAD, boxes[:, 2] - PAD),
                        np.clip(anchor[1], boxes[:, 1] + PAD, boxes[:, 3] - PAD)], axis=1)
    distance = np.hypot(nearest[:, 0] - anchor[0], nearest[:, 1] - anchor[1])
    cost = HARD * blocked + NAMED * on_named + SOFT * _covered(boxes, soft) + distance
    return cost, (blocked <= 1e-9) & (on_named <= 1e-9)


def _crossings(boxes, anchor, hard, samples: int = 48) -> np.ndarray:
    """For each box that needs a leader line, how many of the line's sample points lie on a text or legend."""
    ends = np.stack([np.clip(anchor[0], boxes[:, 0] + PAD, boxes[:, 2] - PAD),
                     np.clip(anchor[1], boxes[:, 1] + PAD, boxes[:, 3] - PAD)], axis=1)
    leader = np.flatnonzero(np.hypot(ends[:, 0] - anchor[0], ends[:, 1] - anchor[1]) > LEADER)
    out = np.zeros(len(boxes))
    t = np.linspace(0.0, 1.0, samples)[None, :, None]
    for start in range(0, len(leader), 64):
        rows = leader[start:start + 64]
        x = anchor[0] + (ends[rows, 0, None, None] - anchor[0]) * t  # (boxes, samples, 1)
        y = anchor[1] + (ends[rows, 1, None, None] - anchor[1]) * t
        on = (x >= hard[:, 0]) & (x <= hard[:, 2]) & (y >= hard[:, 1]) & (y <= hard[:, 3])
        out[rows] = on.any(axis=2).sum(axis=1)
    return out


def _best(anchor, size, hard, named, soft, bounds, order) -> tuple:
    """The ring place of least cost if one is free, else the least costly place anywhere in the axes
    (leader crossings counted for the places cheapest without them only: they cannot lower a cost)."""
    rings = _rings(anchor, size, order)
    cost, free = _costs(rings, anchor, hard, named, soft, bounds)
    cost = cost + 0.01 * np.arange(len(rings))  # ties go to the earlier direction and the nearer ring
    if free.any():
        return tuple(rings[np.flatnonzero(free)[np.argmin(cost[free])]])
    grid = _grid(size, bounds)
    if len(grid):
        rough, _ = _costs(grid, anchor, hard, named, soft, bounds, leaders=False)  # a lower bound
        shortlist = grid[np.argsort(rough, kind="stable")[:400]]
        grid_cost, _ = _costs(shortlist, anchor, hard, named, soft, bounds)
        if grid_cost.min() < cost.min():
            return tuple(shortlist[int(np.argmin(grid_cost))])
    return tuple(rings[int(np.argmin(cost))])


def _needs_leader(anchor, box) -> bool:
    return _distance(anchor, box) > LEADER


def _distance(anchor, box) -> float:
    nx, ny = _nearest(anchor, box)
    return float(np.hypot(nx - anchor[0], ny - anchor[1]))


def _nearest(anchor, box) -> tuple[float, float]:
    """The point of the box (less its margin) nearest the anchor: where a leader line ends."""
    x, y = anchor
    return min(max(x, box[0] + PAD), box[2] - PAD), min(max(y, box[1] + PAD), box[3] - PAD)


def _draw(ax, label: Label, anchor, box):
    to_data = ax.transData.inverted().transform
    text = ax.annotate(label.text, (label.x, label.y), xytext=tuple(to_data((box[0] + PAD, box[1] + PAD))),
                       textcoords="data", fontsize=label.fontsize, color=label.color, ha="left", va="bottom",
                       annotation_clip=False, zorder=6)
    text.set_gid(GID)
    if _needs_leader(anchor, box):
        end = tuple(to_data(_nearest(anchor, box)))
        line, = ax.plot([label.x, end[0]], [label.y, end[1]], "-", c=label.color, lw=0.5, alpha=0.7, zorder=1,
                        scalex=False, scaley=False)
        line.set_gid(LEADER_GID)
    return text
