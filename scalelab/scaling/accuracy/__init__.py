"""Accuracy estimators for scaled networks; every estimate says how it was obtained.

- ``published``: the documented top-1 of exactly this network (``published.yaml``), else an error.
- ``scaling-law`` (default): fitted on the published scaling series (see ``scaling_law``), with its
  leave-one-out error reported by ``scalelab accuracy --validate``.
- ``proxy``: a zero-cost score of the built module (synflow), for ranking only: no top-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from scalelab.errors import ScalelabError, did_you_mean
from scalelab.spec import Spec

METHODS = ("published", "scaling-law", "proxy")

#: below this a ``resolution`` argument is a multiplier of the base's input size, above it pixels
_PIXELS_FROM = 8


@dataclass(frozen=True)
class AccuracyEstimate:
    top1: Optional[float]  # ImageNet top-1 in percent; None for the proxy (a score, not an accuracy)
    method: str
    detail: str  # how the number was obtained, in one sentence
    extrapolated: bool = False  # the query lies outside the data the method was fitted on
    score: Optional[float] = None  # the proxy's value (higher ranks higher)


def _multipliers(base: Spec, resolution: "float | int | None") -> tuple[float, int]:
    """(resolution multiplier, pixels) from a multiplier, a pixel count or None (the base's)."""
    size = base.input.resolution[0]
    if resolution is None:
        return 1.0, size
    if not resolution > 0:
        raise ScalelabError(f"resolution must be positive, got {resolution!r}")
    if resolution > _PIXELS_FROM:
        return resolution / size, int(round(resolution))
    return float(resolution), int(round(size * resolution))


def _base_top1(base: Spec, method: str) -> float:
    if base.reference is None:
        raise ScalelabError(
            f"spec '{base.name}' has no reference accuracy; the {method} estimator scales the base's "
            "published top-1: add `reference: {top1: ..., source: ...}` to the spec, or use --accuracy proxy")
    return base.reference.top1


def estimate_accuracy(
    base_spec: Spec,
    depth: float = 1.0,
    width: float = 1.0,
    resolution: "float | int | None" = None,
    macs: Optional[int] = None,
    method: str = "scaling-law",
    **options,
) -> AccuracyEstimate:
    """Top-1 of ``base_spec`` scaled by ``depth`` and ``width`` at ``resolution`` (a multiplier of
    the base's input size when at most 8, else pixels; None keeps the base's).

    ``macs`` (per image) spares the scaling-law estimator from analysing the scaled spec. Options:
    proxy ``resolution_px`` (default 64), ``batch`` (default 2), ``seed`` (default 0)."""
    if method not in METHODS:
        raise ScalelabError(f"unknown accuracy method '{method}'{did_you_mean(method, METHODS)}; "
                            f"choose one of {', '.join(METHODS)}")
    for what, value in (("depth", depth), ("width", width)):
        if not value > 0:
            raise ScalelabError(f"{what} multiplier must be positive, got {value!r}")
    r, pixels = _multipliers(base_spec, resolution)
    if method == "published":
        return _published(base_spec, depth, width, pixels)
    if method == "proxy":
        from scalelab.scaling.accuracy.proxy import proxy_estimate

        return proxy_estimate(base_spec, depth, width, pixels, **options)
    if options:
        raise ScalelabError(f"the scaling-law estimator takes no options, got {', '.join(options)}")
    return _scaling_law(base_spec, depth, width, r, pixels, macs)


def _published(base: Spec, depth: float, width: float, pixels: int) -> AccuracyEstimate:
    from scalelab.scaling.accuracy.published import find_published

    row = find_published(base.name, depth, width, pixels, base.reference.top1 if base.reference else None)
    if row is None:
        raise ScalelabError(
            f"no published accuracy for {base.name} at depth x{depth:g}, width x{width:g}, {pixels}px; "
            "`scalelab accuracy` lists the published rows; the scaling-law method estimates any scaling")
    return AccuracyEstimate(row.top1, "published", f"published top-1 of {row.name}: {row.source}")


def _base_macs(base: Spec) -> int:
    from scalelab.analysis.costs import analyze

    key = id(base)
    if key not in _BASE_MACS or _BASE_MACS[key][0] is not base:
        if len(_BASE_MACS) > 64:
            _BASE_MACS.clear()
        _BASE_MACS[key] = (base, analyze(base).total.macs)
    return _BASE_MACS[key][1]


_BASE_MACS: dict[int, tuple[Spec, int]] = {}


def _scaling_law(base: Spec, depth: float, width: float, r: float, pixels: int, macs: Optional[int]) -> AccuracyEstimate:
    from scalelab.scaling.accuracy.scaling_law import fitted_law

    base_top1 = _base_top1(base, "scaling-law")
    if macs is None:
        from scalelab.analysis.costs import analyze
        from scalelab.scaling.compound import scale_spec

        macs = analyze(scale_spec(base, depth, width, pixels)).total.macs
    ratio = macs / _base_macs(base)
    law = fitted_law()
    top1 = law.predict(base_top1, ratio, depth, width, r)
    beyond = law.beyond(ratio, depth, width, r)
    detail = (f"scaling-law estimate from {base.name}'s reference top-1 {base_top1:g} "
              f"({base.reference.source}) at MACs x{ratio:.3g}, depth x{depth:g}, width x{width:g}, "
              f"resolution x{r:.3g}; law fitted on published scaling series, see `scalelab accuracy --validate`")
    if beyond:
        detail += "; EXTRAPOLATED: " + "; ".join(beyond)
    return AccuracyEstimate(top1, "scaling-law", detail, extrapolated=bool(beyond))


__all__ = ["AccuracyEstimate", "METHODS", "estimate_accuracy"]
