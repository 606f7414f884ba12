"""The compound-scaling ray a search report draws: cost, and estimated accuracy, along
d = alpha^phi, w = beta^phi, r = gamma^phi (Tan & Le 2019, eq. 3), with depth as blocks built."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from scalelab.scaling.candidates import CandidateError, Evaluator
from scalelab.scaling.compound import DepthLevel, depth_levels, nearest_level


def search_curve(evaluator: Evaluator, result, estimated: bool) -> dict[str, Any]:
    """The compound-scaling ray of the report: the two-step method's own coefficients, or for a direct
    search the ray from the base (phi = 0) through its winner (phi = 1), within the search ranges."""
    w = result.winner.candidate
    if result.coefficients is not None:
        coeffs, chosen = result.coefficients, result.phi
        source = "alpha, beta, gamma found by step 1 of this search (depth as blocks built)"
    else:
        coeffs, chosen = (w.depth, w.width, w.resolution), 1.0
        source = "the ray from the base (phi = 0) through this direct search's winner (phi = 1)"
    space = result.settings.space
    phis = sorted({x / 4 for x in range(-8, 21)} | {0.0, round(chosen, 3)})
    inside = [p for p in phis if all(lo - 1e-9 <= c ** p <= hi + 1e-9 for c, (lo, hi) in
                                     zip(coeffs, (space.depth, space.width, space.resolution)))]
    levels = depth_levels(evaluator.base, *space.depth)
    return {"coefficients": list(coeffs), "source": source, "chosen_phi": chosen,
            "points": scaling_curve(evaluator, coeffs, inside, estimated, levels),
            "accuracy": "scaling-law" if estimated else
            f"not estimated along the curve (method '{evaluator.accuracy_method}')"}


def scaling_curve(evaluator: Evaluator, coefficients: tuple[float, float, float], phis: Sequence[float],
                  with_accuracy: bool = True, levels: Optional[list[DepthLevel]] = None) -> list[dict[str, Any]]:
    """Cost (and, when ``with_accuracy``, estimated accuracy) along d = alpha^phi (the built depth
    nearest it, from ``levels``), w = beta^phi, r = gamma^phi. Training or a proxy per point would
    cost more than the search itself, so callers ask for accuracy only from a cheap estimator. A
    point that cannot be built is left out."""
    a, b, g = coefficients
    points = []
    for phi in phis:
        d, w, r = a ** phi, b ** phi, g ** phi
        if levels is not None:
            d = nearest_level(levels, d).multiplier
        try:
            if with_accuracy:
                points.append({"phi": phi, **evaluator.evaluate(d, w, r).as_dict()})
            else:
                m = evaluator.metrics_at(d, w, r)
                points.append({"phi": phi, "depth": d, "width": w, "resolution": r, "pixels": m["pixels"],
                               "macs": m["macs"], "params": m["params"], "accuracy": None})
        except CandidateError:
            continue
    return points
