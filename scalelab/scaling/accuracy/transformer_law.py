"""The scaling-law estimator for transformers (ViT, DeiT, Swin): the law of ``scaling_law`` (one
saturating term per dimension) fitted on the transformer series of ``published.yaml`` that were
measured alike, never on the CNN series.

Within one protocol. Pre-training on ImageNet-21k or distillation moves a transformer's top-1 by
several points (DeiT-B: 81.8 alone, 83.4 distilled; Swin-B: 83.5 on ImageNet-1k, 85.2 pre-trained
on ImageNet-21k), so a base's estimate comes only from series whose crops, pre-training and
distillation agree with its reference's. Where fewer than two such series exist, the estimate is
refused: a law no series was held out of has no measured error.

Few series, no calibration claimed. Each series is left out in turn (with every network it names)
and predicted by the law fitted on the rest; those errors are reported as they are, and the interval
is widened to them: its half-width is never below the largest |e_i|, and away from the data it grows
as ``intervals`` grows it, q x sigma(delta) with sigma(delta) = 1 + delta / L, q = max |e_i| /
sigma(delta_i) and L the value of ``intervals.L_GRID`` that gives the narrowest intervals on average.
With a handful of residuals an 80% (or any) coverage cannot be shown, so none is stated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from scalelab.errors import ScalelabError
from scalelab.scaling.accuracy.cache import cached
from scalelab.scaling.accuracy.intervals import L_GRID, Residual, coordinates, distance, leave_one_series_out
from scalelab.scaling.accuracy.published import published
from scalelab.scaling.accuracy.scaling_law import Point, ScalingLaw, _law, _ranges, fit_raw, series_points
from scalelab.spec.model import Protocol

#: series a law needs: with one, no series can be held out of the fit to measure its error
MIN_SERIES = 2


def protocol_key(protocol: Protocol) -> str:
    """What must agree for two top-1 figures to share a law: crops, pre-training, distillation."""
    return "|".join(str(part) for part in protocol.like())


def protocol_series(family: str, key: str) -> list[str]:
    """The series of ``family`` whose protocol has ``key``."""
    table = published()
    return [name for name, s in table.in_family(family).items() if protocol_key(s.protocol.at(1)) == key]


@dataclass(frozen=True)
class FamilyLaw:
    family: str
    series: tuple[str, ...]
    law: ScalingLaw
    points: tuple[Point, ...]
    held: tuple[Residual, ...]  # leave one series out: the errors reported and the interval's scale
    scale: float  # L
    q: float

    @property
    def largest(self) -> float:
        """The largest leave-one-series-out error, in top-1 points: the interval's narrowest half-width."""
        return max(abs(r.error) for r in self.held)

    @property
    def ranges(self) -> dict:
        """(min, max) of each multiplier the law was fitted on, as ``ScalingLaw.ranges``."""
        return self.law.ranges

    def interval(self, top1: float, depth: float, width: float, resolution: float) -> tuple[float, float]:
        delta = distance(coordinates(depth, width, resolution), list(self.points))
        half = max(self.largest, self.q * (1.0 + delta / self.scale))
        return max(0.0, top1 - half), min(100.0, top1 + half)

    def errors(self) -> str:
        """'deit -6.00, -6.85; swin +7.09' (predicted minus published, top-1 points, by series held out)."""
        by_series: dict[str, list[str]] = {}
        for r in self.held:
            by_series.setdefault(r.series, []).append(f"{r.error:+.2f}")
        return "; ".join(f"{name} {', '.join(errs)}" for name, errs in by_series.items())


def _max_quantile(held: list[Residual], scale: float) -> float:
    return max(abs(r.error) / (1.0 + r.distance / scale) for r in held)


def _compute(points: list[Point]) -> dict:
    raw = fit_raw(points)
    held = leave_one_series_out(points)
    mean_width = lambda scale: _max_quantile(held, scale) * sum(1 + r.distance / scale for r in held)  # noqa: E731
    scale = min(L_GRID, key=mean_width)
    return {"raw": raw, "scale": scale, "q": _max_quantile(held, scale), "held": [r.__dict__ for r in held]}


def _groups(family: str) -> dict[str, list[str]]:
    """Protocol key -> the family's series measured so, for every protocol with at least MIN_SERIES."""
    keys = dict.fromkeys(protocol_key(s.protocol.at(1)) for s in published().in_family(family).values())
    return {key: names for key in keys if len(names := protocol_series(family, key)) >= MIN_SERIES}


@functools.cache
def _fits(family: str) -> dict:
    """Every protocol group's fit and held-out errors (stored beside the table: ``cache``)."""
    table = published()
    return cached(f"{family}_law", lambda: {key: _compute(series_points(table, series=names))
                                            for key, names in _groups(family).items()})


def family_law(family: str, protocol: Protocol, about: str) -> FamilyLaw:
    """The law of ``family`` for top-1 figures measured under ``protocol``; ``about`` names what is
    estimated (for the refusal)."""
    key = protocol_key(protocol)
    names = protocol_series(family, key)
    fits = _fits(family)
    if key not in fits:
        have = f"{len(names)}: {', '.join(names)}" if names else "none"
        raise ScalelabError(
            f"no estimate for {about}: the {family} scaling law is fitted only on {family} series measured as its "
            f"reference is ({protocol.describe()}), and the published table holds {have}; at least {MIN_SERIES} are "
            "needed, to measure the law's error on a series it never saw. The CNN law does not stand in for it; "
            "`scalelab accuracy` lists the published rows, and `--accuracy proxy` ranks without a top-1")
    data = fits[key]
    points = series_points(published(), series=names)
    return FamilyLaw(family, tuple(names), _law(data["raw"], _ranges(points)), tuple(points),
                     tuple(Residual(**r) for r in data["held"]), data["scale"], data["q"])


def refuse_family(family: str, about: str) -> ScalelabError:
    """The refusal where the table holds no series of the family at all (hybrids)."""
    return ScalelabError(
        f"no estimate for {about}: it is a {family} network (attention blocks with convolutions), and the published "
        f"table holds no scaling series of {family} networks; neither the CNN nor the transformer law stands in for "
        "them. `--accuracy proxy` ranks without a top-1")



def describe_series_protocol(name: str) -> str:
    """'1 crop, no pre-training, no distillation': how a series' top-1 figures were measured."""
    p = published().series[name].protocol
    return ", ".join(("1 crop" if p.crops == 1 else f"{p.crops} crops",
                      "no pre-training" if p.pretraining.lower() == "none" else f"pre-trained on {p.pretraining}",
                      "no distillation" if p.distillation.lower() == "none" else f"distilled from {p.distillation}"))


def family_laws(family: str) -> dict[str, FamilyLaw]:
    """Every protocol's law of ``family`` (those with at least MIN_SERIES series), by protocol key."""
    out = {}
    for key, names in _groups(family).items():
        series = published().series[names[0]]
        out[key] = family_law(family, series.protocol.at(1), f"the {family} series")
    return out
