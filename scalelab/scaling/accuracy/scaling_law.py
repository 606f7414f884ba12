"""The scaling-law accuracy estimator: top-1 of a scaled network from its base's published top-1
and its depth, width and resolution multipliers.

Model. Error falls as a power law towards a floor as a model grows (Hestness et al. 2017, "Deep
Learning Scaling is Predictable, Empirically"; Rosenfeld et al. 2020, "A Constructive Prediction
of the Generalization Error Across Scales"), and scaling any one dimension alone saturates quickly
(Tan & Le 2019, §3.2 and Fig. 3: past depth x2, width x2 or resolution x2 single-dimension gains
flatten). So each dimension gets its own saturating term and the terms multiply::

    err / base err = prod over d in (depth, width, resolution) of (s_d + (1 - s_d) * m_d^-k_d)

where m_d is the multiplier (depth counts repeated blocks: EfficientNet's repeats round up, so
depth x1.1 of B0 is 23 blocks instead of 16, x1.44), s_d the fraction of the error that scaling
d alone never removes, and k_d how fast the rest goes. Shrinking a dimension (m_d < 1) raises its
term without bound, as the MobileNet width series shows (x0.25 costs 20 points). Because every
term saturates, spreading a cost increase over all three dimensions beats putting it into one:
the product rewards balanced, compound scaling and penalises lopsided scalings without a separate
penalty. The error is relative to the base's, so one law transfers across families.

The six numbers are fitted jointly by least squares in top-1 points on every published CNN scaling
series (EfficientNet B0-B7 as in the paper and as torchvision trains it, MobileNet v1 width and
resolution, MobileNet v2 width, ResNet depth). Exponents are kept below 2: the depth data alone
cannot pin its exponent, and unbounded it runs to a step at x1 that would make any depth below x1
catastrophic (Fig. 3 of Tan & Le shows depth gains building over x1-x4, an exponent near 1).
``leave_one_out`` measures how well the law predicts a network it has not seen.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Optional

from scalelab.scaling.accuracy.cache import cached
from scalelab.scaling.accuracy.published import Published, published

DIMENSIONS = ("depth", "width", "resolution")
#: bound on every exponent k_d (see the module docstring)
MAX_EXPONENT = 2.0


@dataclass(frozen=True)
class Point:
    """One published network of a scaling series, relative to the series' base."""

    series: str
    name: str
    base_top1: float
    top1: float
    depth: float  # multiplier of repeated blocks
    width: float
    resolution: float  # multiplier of the input size


@dataclass(frozen=True)
class Term:
    """One dimension's factor on the base's error: s + (1 - s) * m^-k."""

    floor: float  # s
    exponent: float  # k

    def factor(self, multiplier: float) -> float:
        return self.floor + (1.0 - self.floor) * multiplier ** -self.exponent


@dataclass(frozen=True)
class ScalingLaw:
    depth: Term
    width: Term
    resolution: Term
    #: the fitted range: (min, max) of each multiplier over the series (their bases included)
    ranges: dict

    def error_ratio(self, depth: float, width: float, resolution: float) -> float:
        return self.depth.factor(depth) * self.width.factor(width) * self.resolution.factor(resolution)

    def predict(self, base_top1: float, depth: float = 1.0, width: float = 1.0, resolution: float = 1.0) -> float:
        err = (100.0 - base_top1) * self.error_ratio(depth, width, resolution)
        return 100.0 - min(err, 100.0)

    def beyond(self, depth: float, width: float, resolution: float) -> list[str]:
        """How the query leaves the fitted multipliers, one phrase per dimension; empty inside them."""
        out = []
        for what, value in zip(DIMENSIONS, (depth, width, resolution)):
            low, high = self.ranges[what]
            if value > high * (1 + 1e-9):
                out.append(f"{what} x{value:.3g} is {value / high:.2f}x above the largest fitted (x{high:.3g})")
            elif value < low * (1 - 1e-9):
                out.append(f"{what} x{value:.3g} is {low / value:.2f}x below the smallest fitted (x{low:.3g})")
        return out

    def terms(self) -> dict[str, Term]:
        return {"depth": self.depth, "width": self.width, "resolution": self.resolution}

    def describe(self) -> str:
        factors = " x ".join(f"({t.floor:.3f} + {1 - t.floor:.3f} x {d[0]}^-{t.exponent:.3f})"
                             for d, t in self.terms().items())
        return f"error = base error x {factors}, with d, w, r the depth (blocks), width and resolution multipliers"


def series_points(table: Published, family: str = "cnn", series: Optional[Iterable[str]] = None) -> list[Point]:
    """The points of a family's series (of ``series`` only, where given), relative to their bases."""
    points = []
    for name in series if series is not None else table.in_family(family):
        base = table.base_of(name)
        for row in table.members(name):
            if row is not base:
                d, w, r = table.multipliers(row)
                if row.blocks is not None and base.blocks is not None:
                    d = row.blocks / base.blocks  # what depth scaling really built (repeats round up)
                points.append(Point(name, row.name, base.top1, row.top1, d, w, r))
    return points


def _ranges(points: list[Point]) -> dict:
    # the bases themselves (every multiplier 1) are fitted points too
    return {what: (min([1.0] + [getattr(p, what) for p in points]), max([1.0] + [getattr(p, what) for p in points]))
            for what in DIMENSIONS}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -500 else 0.0


def _law(raw: list[float], ranges: dict) -> ScalingLaw:
    """The law from unconstrained parameters: s = sigmoid(a) in (0, 1), k = MAX_EXPONENT x sigmoid(b),
    so the optimiser needs no walls (Nelder-Mead stalls against them)."""
    depth, width, resolution = (Term(_sigmoid(raw[2 * i]), MAX_EXPONENT * _sigmoid(raw[2 * i + 1])) for i in range(3))
    return ScalingLaw(depth, width, resolution, ranges)


def _loss(raw: list[float], points: list[Point]) -> float:
    law = _law(raw, {})
    return sum((law.predict(p.base_top1, p.depth, p.width, p.resolution) - p.top1) ** 2 for p in points)


def _nelder_mead(f, start: list[float], tolerance: float = 1e-10, max_iterations: int = 20000) -> list[float]:
    """Plain Nelder-Mead (Nelder & Mead 1965): six parameters do not justify a scipy dependency."""
    n = len(start)
    simplex = [list(start)] + [[v + (0.5 if i == j else 0.0) for j, v in enumerate(start)] for i in range(n)]
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


#: starting points (a, b per dimension, before the sigmoids): s = 0.5 and s = 0.82, k = 1 each. The
#: loss has local minima; the best of both starts, each polished by a restart, is the fit.
_STARTS = ([0.0] * 6, [1.5, 0.0] * 3)


def fit_raw(points: list[Point]) -> list[float]:
    """The unconstrained parameters (see ``_law``) of the least-squares fit in top-1 points."""
    loss = lambda raw: _loss(raw, points)  # noqa: E731
    candidates = []
    for start in _STARTS:
        raw = _nelder_mead(loss, list(start))
        candidates.append(_nelder_mead(loss, raw))  # a restart frees a collapsed simplex
    return min(candidates, key=loss)


def fit(points: list[Point]) -> ScalingLaw:
    """Least squares in top-1 points over the published series points."""
    return _law(fit_raw(points), _ranges(points))


@functools.cache
def fitted_law() -> ScalingLaw:
    """The law fitted on every published scaling series (once per published table: ``cache``)."""
    points = series_points(published())
    raw = cached("scaling_law", lambda: {"raw": fit_raw(points)})["raw"]
    return _law(raw, _ranges(points))


@dataclass(frozen=True)
class Holdout:
    series: str
    name: str
    actual: float
    predicted: float

    @property
    def error(self) -> float:
        return self.predicted - self.actual


@functools.cache
def leave_one_out() -> tuple[Holdout, ...]:
    """Each published network predicted by a law fitted without it (without every row of that
    network: EfficientNet-B3 as the paper and as torchvision report it leave together)."""
    points = series_points(published())
    out = []
    for held in points:
        law = fit([p for p in points if p.name != held.name])
        predicted = law.predict(held.base_top1, held.depth, held.width, held.resolution)
        out.append(Holdout(held.series, held.name, held.top1, predicted))
    return tuple(out)
