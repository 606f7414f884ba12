"""80% prediction intervals of the scaling-law estimator.

Method: normalised jackknife residuals (Barber et al. 2021, "Predictive inference with the
jackknife+"), with an error scale that grows with distance (Lei et al. 2018, "Distribution-free
predictive inference for regression", §5.2). The residuals are those of networks the law never saw:
each published series, with every network it names, is left out in turn and predicted by the law
fitted on the rest. Each residual e_i has a distance delta_i, in log-multiplier space
(ln d, ln w, ln r), from the range of multipliers that fit saw (a box, the series bases at
multiplier 1 included; 0 inside it). With sigma(delta) = 1 + delta / L, a query at distance delta
from the full data's range gets

    estimate +- q x sigma(delta),  q = the ceil(0.8 (n + 1))-th smallest |e_i| / sigma(delta_i),

and L is the value of a fixed grid that gives the narrowest intervals on average over the
residuals (q always covers 80% of them: no wider than needed). Leave-one-network-out residuals,
a gentler test, are measured too by the validation report.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional

from scalelab.scaling.accuracy.cache import cached
from scalelab.scaling.accuracy.published import published
from scalelab.scaling.accuracy.scaling_law import Point, ScalingLaw, fit, fitted_law, series_points

LEVEL = 0.8
#: candidate distance scales L (ln units)
L_GRID = tuple(round(0.05 * 1.25 ** k, 4) for k in range(25))


def coordinates(depth: float, width: float, resolution: float) -> tuple[float, float, float]:
    return math.log(depth), math.log(width), math.log(resolution)


def distance(query: tuple[float, float, float], points: list[Point]) -> float:
    """Log-space distance from a query to the box of multipliers the points span (with the bases,
    every multiplier 1); 0 inside it."""
    corners = [coordinates(p.depth, p.width, p.resolution) for p in points] + [(0.0, 0.0, 0.0)]
    outside = []
    for axis, value in enumerate(query):
        low, high = min(c[axis] for c in corners), max(c[axis] for c in corners)
        outside.append(max(0.0, low - value, value - high))
    return math.hypot(*outside)


def conformal_quantile(scores: list[float], level: float = LEVEL) -> float:
    """The ceil(level x (n + 1))-th smallest score (the largest when that exceeds n)."""
    ordered = sorted(scores)
    k = min(len(ordered), math.ceil(level * (len(ordered) + 1)))
    return ordered[k - 1]


@dataclass(frozen=True)
class Residual:
    name: str
    series: str
    error: float  # predicted - actual, top-1 points
    distance: float  # to the nearest point of the data the prediction was fitted on


@dataclass(frozen=True)
class Calibration:
    law: ScalingLaw
    points: tuple[Point, ...]
    held_series: tuple[Residual, ...]  # leave one series out: what q and L are calibrated on
    scale: float  # L
    q: float

    def sigma(self, delta: float) -> float:
        return 1.0 + delta / self.scale

    def half_width(self, depth: float, width: float, resolution: float) -> float:
        return self.q * self.sigma(distance(coordinates(depth, width, resolution), list(self.points)))

    def interval(self, top1: float, depth: float, width: float, resolution: float) -> tuple[float, float]:
        half = self.half_width(depth, width, resolution)
        return max(0.0, top1 - half), min(100.0, top1 + half)


def _without(points: list[Point], names: set[str]) -> list[Point]:
    return [p for p in points if p.name not in names]


def _residuals(points: list[Point], held: list[Point], law: ScalingLaw) -> list[Residual]:
    return [Residual(p.name, p.series, law.predict(p.base_top1, p.depth, p.width, p.resolution) - p.top1,
                     distance(coordinates(p.depth, p.width, p.resolution), points)) for p in held]


def leave_one_network_out(points: list[Point]) -> list[Residual]:
    out = []
    for p in points:
        rest = _without(points, {p.name})  # every row of that network leaves together
        out += _residuals(rest, [p], fit(rest))
    return out


def leave_one_series_out(points: list[Point]) -> list[Residual]:
    """Each series, with every network it names in other series, predicted by a law fitted without it."""
    out = []
    for series in dict.fromkeys(p.series for p in points):
        names = {p.name for p in points if p.series == series}
        rest = _without(points, names)
        if rest:
            out += _residuals(rest, [p for p in points if p.series == series], fit(rest))
    return out


def coverage(residuals, q: float, scale: float) -> float:
    return sum(abs(r.error) <= q * (1 + r.distance / scale) for r in residuals) / len(residuals)


def _quantile(residuals, scale: float) -> float:
    return conformal_quantile([abs(r.error) / (1 + r.distance / scale) for r in residuals])


def calibrate(points: list[Point], law: Optional[ScalingLaw] = None) -> Calibration:
    law = law or fit(points)
    held = leave_one_series_out(points)
    mean_width = lambda scale: _quantile(held, scale) * sum(1 + r.distance / scale for r in held)  # noqa: E731
    scale = min(L_GRID, key=mean_width)
    return Calibration(law, tuple(points), tuple(held), scale, _quantile(held, scale))


def jackknife_coverage(residuals, scale: float) -> float:
    """How often a residual lies within the interval whose q is computed without it."""
    hits = 0
    for i, r in enumerate(residuals):
        q = _quantile([o for j, o in enumerate(residuals) if j != i], scale)
        hits += abs(r.error) <= q * (1 + r.distance / scale)
    return hits / len(residuals)


@functools.cache
def calibration() -> Calibration:
    """The intervals of the law fitted on every published scaling series (once per published table:
    ``cache``)."""
    points = series_points(published())

    def compute() -> dict:
        cal = calibrate(points, fitted_law())
        return {"scale": cal.scale, "q": cal.q, "held_series": [r.__dict__ for r in cal.held_series]}

    data = cached("intervals", compute)
    return Calibration(fitted_law(), tuple(points), tuple(Residual(**r) for r in data["held_series"]),
                       data["scale"], data["q"])
