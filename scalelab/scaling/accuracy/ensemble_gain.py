"""How much averaging models (an ensemble) and test crops lowers the error, fitted on published results.

Data: ``ensembles.yaml`` (GoogLeNet's models x crops table, AlexNet's 5- and 7-CNN ensembles, VGG's
multi-crop and two-net results, ResNet's six-model ensemble), each row as the ratio of its error to
its study's baseline (one model, the study's fewest crops, same metric).

Law, fitted by least squares without intercept (two unknowns, closed form)::

    ln(error / baseline error) = -a ln(models) - b ln(crops)

i.e. each doubling of the models multiplies the error by 2^-a, each doubling of the crops by 2^-b.
Its error is measured leave-one-out (each row predicted by the law fitted without it). A
held-out residual is relative to the predicted gain, e = ln(actual ratio) / ln(predicted ratio) - 1, so
the 80% interval (the central 80% of the held-out e) scales the predicted gain, and one model on one
crop, which gains nothing by definition, has no spread. Top-1 and top-5 rows are pooled (both are
few); the law is applied to top-1 error, and the held-out error includes what pooling costs.
Beyond the models or crops of the data the estimate is marked extrapolated.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import resources
from typing import Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scalelab.errors import ScalelabError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Study(_Strict):
    fit: bool = True
    about: str
    source: str


class Row(_Strict):
    study: str
    models: int = Field(ge=1)
    crops: int = Field(ge=1)
    metric: str = Field(pattern="^top[15]_error$")
    error: float = Field(gt=0, lt=100)
    split: str
    evaluation: Optional[str] = None


class Table(_Strict):
    studies: dict[str, Study]
    rows: list[Row]


@dataclass(frozen=True)
class Point:
    """One published row relative to its study's baseline."""

    study: str
    metric: str
    models: float  # multiple of the baseline's models
    crops: float  # multiple of the baseline's crops
    ratio: float  # error / baseline error


@functools.cache
def table() -> Table:
    text = (resources.files("scalelab.scaling.accuracy") / "ensembles.yaml").read_text(encoding="utf-8")
    try:
        data = Table.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise ScalelabError(f"ensembles.yaml: {exc.errors(include_url=False)[0]['msg']}") from None
    unknown = {r.study for r in data.rows} - set(data.studies)
    if unknown:
        raise ScalelabError(f"ensembles.yaml: rows name unknown studies {sorted(unknown)}")
    return data


def points() -> list[Point]:
    out = []
    studies = table().studies
    for (study, metric) in sorted({(r.study, r.metric) for r in table().rows if studies[r.study].fit}):
        rows = [r for r in table().rows if r.study == study and r.metric == metric]
        base = min(rows, key=lambda r: (r.models, r.crops))
        out += [Point(study, metric, r.models / base.models, r.crops / base.crops, r.error / base.error)
                for r in rows if r is not base]
    return out


def _fit(pts: list[Point]) -> tuple[float, float]:
    """(a, b) minimising the squared residuals of ln ratio = -a ln models - b ln crops."""
    xs = [(-math.log(p.models), -math.log(p.crops)) for p in pts]
    ys = [math.log(p.ratio) for p in pts]
    s11 = sum(x1 * x1 for x1, _ in xs)
    s22 = sum(x2 * x2 for _, x2 in xs)
    s12 = sum(x1 * x2 for x1, x2 in xs)
    t1 = sum(x1 * y for (x1, _), y in zip(xs, ys))
    t2 = sum(x2 * y for (_, x2), y in zip(xs, ys))
    det = s11 * s22 - s12 * s12
    if det <= 0:
        raise ScalelabError("ensembles.yaml: the rows do not vary both models and crops")
    return (t1 * s22 - t2 * s12) / det, (t2 * s11 - t1 * s12) / det


def _central(values: list[float], share: float = 0.8) -> tuple[float, float]:
    """The narrowest order-statistic band dropping the same count at each end that still holds at
    least ``share`` of ``values`` (with 12 residuals: the 2nd smallest to the 2nd largest)."""
    v = sorted(values)
    drop = math.floor((1 - share) / 2 * len(v) + 1e-9)
    return v[drop], v[len(v) - 1 - drop]


@dataclass(frozen=True)
class HeldOut:
    point: Point
    predicted: float  # predicted ratio without the point's study

    @property
    def residual(self) -> float:
        """The actual gain relative to the predicted one, minus 1 (0: exact; -0.5: half the gain)."""
        return math.log(self.point.ratio) / math.log(self.predicted) - 1.0


@dataclass(frozen=True)
class GainLaw:
    a: float  # per ln(models)
    b: float  # per ln(crops)
    held_out: tuple[HeldOut, ...]
    max_models: float
    max_crops: float

    def ratio(self, models: float, crops: float) -> float:
        return math.exp(-self.a * math.log(models) - self.b * math.log(crops))

    @property
    def band(self) -> tuple[float, float]:
        """The central 80% of the held-out relative residuals of the gain."""
        return _central([h.residual for h in self.held_out])

    @property
    def mean_abs_error(self) -> float:
        """Mean absolute held-out error in error-ratio terms (0.02 = 2% of the baseline error)."""
        return sum(abs(h.point.ratio - h.predicted) for h in self.held_out) / len(self.held_out)

    @property
    def coverage(self) -> float:
        lo, hi = self.band
        return sum(lo <= h.residual <= hi for h in self.held_out) / len(self.held_out)

    def describe(self) -> str:
        return (f"error x models^-{self.a:.3f} x crops^-{self.b:.3f}, fitted on {len(self.held_out)} published "
                f"ensemble and multi-crop results ({len({h.point.study for h in self.held_out})} studies); leave-one-out mean error "
                f"{self.mean_abs_error:.1%} of the baseline error, 80% interval from those residuals")


@functools.cache
def fitted_gain() -> GainLaw:
    pts = points()
    a, b = _fit(pts)
    held = []
    for i, p in enumerate(pts):
        a_out, b_out = _fit(pts[:i] + pts[i + 1:])
        held.append(HeldOut(p, math.exp(-a_out * math.log(p.models) - b_out * math.log(p.crops))))
    return GainLaw(a, b, tuple(held), max(p.models for p in pts), max(p.crops for p in pts))


@dataclass(frozen=True)
class GainEstimate:
    top1: float
    low: float  # 80% interval
    high: float
    error_ratio: float
    extrapolated: bool
    detail: str


def estimate_top1(base_top1: float, models: int, crops: int, base_crops: int = 1) -> GainEstimate:
    """Top-1 of ``models`` averaged networks of single-model top-1 ``base_top1``, each on ``crops`` views.

    ``base_top1`` was measured on ``base_crops`` views (its reference's protocol): the crops' gain is
    taken from there, so a ten-crop figure gains nothing more at 10 crops and loses at 1."""
    if models < 1 or crops < 1 or base_crops < 1:
        raise ScalelabError(f"models and crops must be at least 1, got {models}, {crops} and {base_crops}")
    law = fitted_gain()
    ratio = law.ratio(models, crops / base_crops)
    lo, hi = law.band
    error = 100.0 - base_top1
    beyond = models > law.max_models or crops > law.max_crops
    views = "single-crop" if base_crops == 1 else f"{base_crops}-crop"
    detail = f"ensemble-gain law from a single-model, {views} top-1 of {base_top1:g}: {law.describe()}"
    if base_crops > 1:
        detail += f", with crops counted relative to the reference's {base_crops}"
    if beyond:
        detail += f"; EXTRAPOLATED beyond {law.max_models:g} models / {law.max_crops:g} crops"
    gain = math.log(ratio)  # the ln error ratio: < 0 where the views and models add up, > 0 with fewer crops
    worst, best = sorted((math.exp(gain * (1 + e)) for e in (lo, hi)), reverse=True)  # the larger ratio is worse
    return GainEstimate(100.0 - error * ratio, 100.0 - error * worst, 100.0 - error * best, ratio, beyond, detail)
