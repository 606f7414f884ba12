"""The scaling-law accuracy estimator: top-1 of a scaled network from its base's published top-1,
its MACs relative to the base and its depth/width/resolution multipliers.

Model. Classification error falls as a power law of compute towards an irreducible floor
(Hestness et al. 2017, "Deep Learning Scaling is Predictable, Empirically"; Rosenfeld et al. 2020,
"A Constructive Prediction of the Generalization Error Across Scales"), and scaling one dimension
alone saturates sooner than scaling all three in balance (Tan & Le 2019, §3.2 and Fig. 3). So::

    err(m) = err0 * (s + (1 - s) * exp(-k * x)),   err0 = 100 - base top-1
    x      = ln(MACs / base MACs) - lam * |P l|^2

where l = (ln d, ln w, ln r) and P projects out the compound direction (ln 1.2, ln 1.1, ln 1.15)
of EfficientNet's grid search, so |P l|^2 measures how far a scaling is from balanced. The error
is relative to the base's (s is the fraction of the base's error that no scaling removes), so one
law transfers across families with different base accuracies. Three numbers (s, k, lam) are fitted
by least squares in top-1 points on every published scaling series (EfficientNet B0-B7, MobileNet
v1 width and resolution, MobileNet v2 width, ResNet depth); ``leave_one_out`` measures how well it
predicts a network it has not seen.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from scalelab.scaling.accuracy.published import Published, published

#: the compound-scaling direction (EfficientNet alpha, beta, gamma), as a unit vector in log space
_RAY = tuple(math.log(v) for v in (1.2, 1.1, 1.15))
_RAY = tuple(v / math.sqrt(sum(u * u for u in _RAY)) for v in _RAY)


@dataclass(frozen=True)
class Point:
    """One published network of a scaling series, relative to the series' base."""

    series: str
    name: str
    base_top1: float
    top1: float
    macs_ratio: float
    depth: float
    width: float
    resolution: float  # multiplier


def imbalance(depth: float, width: float, resolution: float) -> float:
    """Squared distance of (ln d, ln w, ln r) from the compound-scaling ray: 0 for balanced scaling."""
    logs = (math.log(depth), math.log(width), math.log(resolution))
    along = sum(a * u for a, u in zip(logs, _RAY))
    return sum((a - along * u) ** 2 for a, u in zip(logs, _RAY))


@dataclass(frozen=True)
class ScalingLaw:
    saturation: float  # s: fraction of the base's error that scaling never removes
    exponent: float  # k
    balance_penalty: float  # lam
    #: the fitted range: (min, max) of the MACs ratio and of each multiplier over the series
    ranges: dict

    def predict(self, base_top1: float, macs_ratio: float, depth: float = 1.0, width: float = 1.0,
                resolution: float = 1.0) -> float:
        x = math.log(macs_ratio) - self.balance_penalty * imbalance(depth, width, resolution)
        err = (100.0 - base_top1) * (self.saturation + (1 - self.saturation) * math.exp(-self.exponent * x))
        return max(0.0, 100.0 - min(err, 100.0))

    def beyond(self, macs_ratio: float, depth: float, width: float, resolution: float) -> list[str]:
        """How the query leaves the fitted range, one phrase per quantity; empty inside it."""
        out = []
        for what, value in (("MACs", macs_ratio), ("depth", depth), ("width", width), ("resolution", resolution)):
            low, high = self.ranges[what]
            if value > high * (1 + 1e-9):
                out.append(f"{what} x{value:.3g} is {value / high:.2f}x above the largest fitted (x{high:.3g})")
            elif value < low * (1 - 1e-9):
                out.append(f"{what} x{value:.3g} is {low / value:.2f}x below the smallest fitted (x{low:.3g})")
        return out

    def describe(self) -> str:
        return (f"error = base error x ({self.saturation:.3f} + {1 - self.saturation:.3f} x (MACs ratio)^-{self.exponent:.3f}"
                f" x exp({self.exponent * self.balance_penalty:.3f} x imbalance))")


def series_points(table: Published) -> list[Point]:
    points = []
    for name in table.series:
        base = table.base_of(name)
        for row in table.members(name):
            if row is not base:
                d, w, r = table.multipliers(row)
                points.append(Point(name, row.name, base.top1, row.top1, row.macs / base.macs, d, w, r))
    return points


def _ranges(points: list[Point]) -> dict:
    ranges = {}
    for what, attr in (("MACs", "macs_ratio"), ("depth", "depth"), ("width", "width"), ("resolution", "resolution")):
        values = [1.0] + [getattr(p, attr) for p in points]  # the bases themselves are fitted points too
        ranges[what] = (min(values), max(values))
    return ranges


def _loss(params: list[float], points: list[Point]) -> float:
    s, k, lam = params
    if not (0 <= s < 1 and 0 < k < 5 and 0 <= lam < 10):
        return math.inf
    law = ScalingLaw(s, k, lam, {})
    return sum((law.predict(p.base_top1, p.macs_ratio, p.depth, p.width, p.resolution) - p.top1) ** 2 for p in points)


def _nelder_mead(f, start: list[float], tolerance: float = 1e-10, max_iterations: int = 4000) -> list[float]:
    """Plain Nelder-Mead (Nelder & Mead 1965): three parameters do not justify a scipy dependency."""
    n = len(start)
    simplex = [list(start)] + [[v * 1.25 if i == j and v else (0.05 if i == j else v) for j, v in enumerate(start)]
                               for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(max_iterations):
        order = sorted(range(n + 1), key=values.__getitem__)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if abs(values[-1] - values[0]) <= tolerance * (1 + abs(values[0])):
            break
        centre = [sum(x[i] for x in simplex[:-1]) / n for i in range(n)]
        worst = simplex[-1]
        reflected = [c + (c - w) for c, w in zip(centre, worst)]
        fr = f(reflected)
        if fr < values[0]:
            expanded = [c + 2 * (c - w) for c, w in zip(centre, worst)]
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = [c + 0.5 * (w - c) for c, w in zip(centre, worst)]
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [[b + 0.5 * (x - b) for b, x in zip(best, xs)] for xs in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
    return simplex[min(range(n + 1), key=values.__getitem__)]


_START = [0.6, 0.4, 0.05]


def fit(points: list[Point]) -> ScalingLaw:
    s, k, lam = _nelder_mead(lambda p: _loss(p, points), _START)
    return ScalingLaw(s, k, lam, _ranges(points))


@functools.cache
def fitted_law() -> ScalingLaw:
    """The law fitted on every published scaling series (computed once per process)."""
    return fit(series_points(published()))


@dataclass(frozen=True)
class Holdout:
    series: str
    name: str
    actual: float
    predicted: float

    @property
    def error(self) -> float:
        return self.predicted - self.actual


def leave_one_out() -> list[Holdout]:
    """Each published network predicted by a law fitted without it (without every row of that
    network: EfficientNet-B3 as the paper and as torchvision report it leave together)."""
    points = series_points(published())
    out = []
    for held in points:
        law = fit([p for p in points if p.name != held.name])
        predicted = law.predict(held.base_top1, held.macs_ratio, held.depth, held.width, held.resolution)
        out.append(Holdout(held.series, held.name, held.top1, predicted))
    return out
