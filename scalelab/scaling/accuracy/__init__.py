"""Accuracy estimators for scaled networks; every estimate says how it was obtained.

- ``published``: the documented top-1 of exactly this network (``published.yaml``), else an error.
- ``scaling-law`` (default): fitted on the published scaling series (see ``scaling_law``), with an
  80% prediction interval (``intervals``) whose coverage ``scalelab accuracy --validate`` reports.
  A transformer (``family``) gets the law fitted on the transformer series measured as its reference
  is (``transformer_law``), with the leave-one-series-out errors as they are; a hybrid, or a
  protocol with too few series, is refused: the CNN law never stands in.
- ``proxy``: a zero-cost score of the built module (synflow), for ranking only: no top-1.
"""

from __future__ import annotations

from typing import Optional

from scalelab.errors import ScalelabError, did_you_mean
from scalelab.scaling.accuracy.estimate import AccuracyEstimate
from scalelab.scaling.accuracy.family import network_family
from scalelab.scaling.accuracy.intervals import calibration
from scalelab.scaling.accuracy.proxy import proxy_estimate
from scalelab.scaling.accuracy.published import find_published, published
from scalelab.scaling.accuracy.scaling_law import ScalingLaw, fitted_law
from scalelab.scaling.accuracy.transformer_law import FamilyLaw, family_law, refuse_family
from scalelab.scaling.rounding import round_repeats
from scalelab.scaling.transformer import built_width
from scalelab.spec import Spec
from scalelab.spec.model import Stage

METHODS = ("published", "scaling-law", "proxy")


def _pixels(base: Spec, resolution: Optional[int]) -> int:
    """The input size in pixels: ``resolution`` itself, or the base's when None."""
    if resolution is None:
        return base.input.resolution[0]
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ScalelabError(f"resolution is the input size in pixels, a positive integer; got {resolution!r}")
    return resolution


def _base_top1(base: Spec, method: str) -> float:
    if base.reference is None:
        raise ScalelabError(
            f"spec '{base.name}' has no reference accuracy; the {method} estimator scales the base's "
            "published top-1: add `reference: {top1: ..., source: ...}` to the spec, or rank by the proxy score "
            "(`scalelab scale --accuracy proxy`, `scalelab accuracy -m proxy`)")
    return base.reference.top1


def estimate_accuracy(
    base_spec: Spec,
    depth: float = 1.0,
    width: float = 1.0,
    resolution: Optional[int] = None,
    method: str = "scaling-law",
    **options,
) -> AccuracyEstimate:
    """Top-1 of ``base_spec`` scaled by ``depth`` and ``width`` at an input of ``resolution``
    pixels (None keeps the base's), as ``scale_spec`` takes them.

    Options: proxy ``resolution_px`` (default 64), ``batch`` (default 2), ``seed`` (default 0)."""
    if method not in METHODS:
        raise ScalelabError(f"unknown accuracy method '{method}'{did_you_mean(method, METHODS)}; "
                            f"choose one of {', '.join(METHODS)}")
    for what, value in (("depth", depth), ("width", width)):
        if not value > 0:
            raise ScalelabError(f"{what} multiplier must be positive, got {value!r}")
    pixels = _pixels(base_spec, resolution)
    if method == "published":
        return _published(base_spec, depth, width, pixels)
    if method == "proxy":
        return proxy_estimate(base_spec, depth, width, pixels, **options)
    if options:
        raise ScalelabError(f"the scaling-law estimator takes no options, got {', '.join(options)}")
    return _scaling_law(base_spec, depth, width, pixels)


def _published(base: Spec, depth: float, width: float, pixels: int) -> AccuracyEstimate:
    row = find_published(base.name, depth, width, pixels, base.reference.top1 if base.reference else None)
    if row is None:
        raise ScalelabError(
            f"no published accuracy for {base.name} at depth x{depth:g}, width x{width:g}, {pixels}px; "
            "`scalelab accuracy` lists the published rows; the scaling-law method estimates any scaling")
    found = published().reference(row)
    if base.reference is not None and base.reference.protocol is not None and not found.like_for_like(base.reference):
        raise ScalelabError(
            f"the published top-1 of {row.name} ({found.describe_protocol()}) is not measured like {base.name}'s "
            f"reference ({base.reference.describe_protocol()}), so it cannot stand for a scaling of it; the "
            "scaling-law method estimates under the base's own protocol")
    return AccuracyEstimate(row.top1, "published", f"published top-1 of {row.name}: {row.source}; "
                                                   f"{found.describe_protocol()}")


def repeated_blocks(spec: Spec, depth: float = 1.0) -> tuple[int, int]:
    """(blocks before, blocks after) depth scaling by ``depth``: the repeats of the stages that scale
    in depth, summed, rounded up per stage as ``scale_spec`` does."""
    stages = [e for e in spec.blocks if isinstance(e, Stage) and e.scale_depth]
    return sum(s.repeat for s in stages), sum(round_repeats(s.repeat, depth) for s in stages)


def _protocol_at(base: Spec, pixels: int) -> str:
    """The base reference's protocol with the scaled network's input size: the law scales error
    ratios, so an estimate keeps the crops, pre-training and distillation of the top-1 it scales."""
    ref = base.reference
    assert ref is not None  # the estimators refused a base without a reference top-1 before
    if ref.protocol is None:
        return f"{ref.dataset}, protocol not stated by the spec"
    return f"{ref.dataset}, {ref.protocol.model_copy(update={'resolution': pixels}).describe()}"


def law_of(base: Spec) -> "ScalingLaw | FamilyLaw":
    """The law that estimates scalings of ``base``: the CNN law, or its family's law for its
    reference's protocol; a ScalelabError where there is none."""
    family = network_family(base)
    if family == "cnn":
        return fitted_law()
    about = f"scalings of {base.name}"
    if family != "transformer":
        raise refuse_family(family, about)
    if base.reference is None or base.reference.protocol is None:
        raise ScalelabError(
            f"no estimate for {about}: transformer series differ by pre-training and distillation, and the "
            f"{family} law is fitted within one protocol, so the spec's reference must state its protocol "
            "(`reference: {top1: ..., source: ..., protocol: {crops, resolution, pretraining, distillation}}`)")
    return family_law(family, base.reference.protocol, about)


def _scaling_law(base: Spec, depth: float, width: float, pixels: int) -> AccuracyEstimate:
    base_top1 = _base_top1(base, "scaling-law")
    assert base.reference is not None  # _base_top1 refuses a base without one
    fitted = law_of(base)
    before, after = repeated_blocks(base, depth)
    if isinstance(fitted, FamilyLaw):
        return _family_estimate(base, fitted, depth, width, pixels, (before, after))
    # what depth scaling really builds: repeats round up per stage (no stages: depth changes nothing)
    d = after / before if before else 1.0
    r = pixels / base.input.resolution[0]
    law = fitted
    top1 = law.predict(base_top1, d, width, r)
    beyond = law.beyond(d, width, r)
    low, high = calibration().interval(top1, d, width, r)
    detail = (f"scaling-law estimate from {base.name}'s reference top-1 {base_top1:g} ({base.reference.source}) "
              f"at depth multiplier x{depth:g} (stage repeats rounded up: {before} -> {after} blocks, built depth "
              f"x{d:.3g}, which the law reads), width x{width:g}, resolution "
              f"{pixels}px (x{r:.3g}); per-dimension saturating law fitted on published scaling series, "
              f"see `scalelab accuracy --validate`; 80% prediction interval [{low:.2f}, {high:.2f}] from the "
              "errors on series the law never saw, wider away from the fitted multipliers")
    detail += f"; measured as the base's reference is: {_protocol_at(base, pixels)}"
    if beyond:
        detail += "; EXTRAPOLATED: " + "; ".join(beyond)
    return AccuracyEstimate(top1, "scaling-law", detail, extrapolated=bool(beyond), low=low, high=high)


def _family_estimate(base: Spec, fam: FamilyLaw, depth: float, width: float, pixels: int,
                     blocks: tuple[int, int]) -> AccuracyEstimate:
    """The estimate of a family's law: its held-out errors as they are, the interval spanning them."""
    assert base.reference is not None and base.reference.protocol is not None  # law_of refused otherwise
    before, after = blocks
    d, r = (after / before if before else 1.0), pixels / base.input.resolution[0]
    embed = built_width(base, width)
    # what width scaling really builds: the embedding width in whole heads (192 x1.1 stays 192)
    w = embed[1] / embed[0] if embed else width
    widths = f" (embedding width {embed[0]} -> {embed[1]} in whole heads, built width x{w:.3g})" if embed else ""
    top1 = fam.law.predict(base.reference.top1, d, w, r)
    low, high = fam.interval(top1, d, w, r)
    beyond = fam.law.beyond(d, w, r)
    detail = (f"{fam.family} scaling-law estimate from {base.name}'s reference top-1 {base.reference.top1:g} "
              f"({base.reference.source}) at depth multiplier x{depth:g} ({before} -> {after} blocks, built depth "
              f"x{d:.3g}), width x{width:g}{widths}, resolution {pixels}px (x{r:.3g}), the built multipliers read by "
              f"the law; law fitted on the {len(fam.series)} "
              f"{fam.family} series measured as the reference is ({', '.join(fam.series)}: {_protocol_at(base, pixels)}), "
              f"never on the CNN series; leave-one-series-out errors, predicted minus published top-1: {fam.errors()}; "
              f"interval [{low:.2f}, {high:.2f}] at least as wide as the largest of them, wider away from the fitted multipliers "
              "(too few series to calibrate its coverage, so none is claimed)")
    if beyond:
        detail += "; EXTRAPOLATED: " + "; ".join(beyond)
    return AccuracyEstimate(top1, "scaling-law", detail, extrapolated=bool(beyond), low=low, high=high)


__all__ = ["AccuracyEstimate", "METHODS", "estimate_accuracy", "law_of", "repeated_blocks"]
