"""The compound-scaling ray a search report draws: cost, and estimated accuracy, along
d = alpha^phi, w = beta^phi, r = gamma^phi (Tan & Le 2019, eq. 3), with depth as blocks built."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from scalelab.scaling.candidates import CandidateError, Evaluator
from scalelab.scaling.compound import DepthLevel, depth_levels, nearest_level
from scalelab.scaling.fitted import clamp, clamps
from scalelab.scaling.two_step import phi_range


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
    box = space if clamps(result.settings, evaluator) else None  # the ray held inside the fitted range
    phis = sorted({x / 4 for x in range(-8, 21)} | {0.0, round(chosen, 3)})
    lo, hi = phi_range(coeffs, space, box is not None)
    inside = [p for p in phis if lo - 1e-9 <= p <= hi + 1e-9]
    levels = depth_levels(evaluator.base, *space.depth)
    return {"coefficients": list(coeffs), "source": source, "chosen_phi": chosen,
            "points": scaling_curve(evaluator, coeffs, inside, estimated, levels, box),
            "accuracy": "scaling-law" if estimated else
            f"not estimated along the curve (method '{evaluator.accuracy_method}')"}


def scaling_curve(evaluator: Evaluator, coefficients: tuple[float, float, float], phis: Sequence[float],
                  with_accuracy: bool = True, levels: Optional[list[DepthLevel]] = None,
                  box: Any = None) -> list[dict[str, Any]]:
    """Cost (and, when ``with_accuracy``, estimated accuracy) along d = alpha^phi (the built depth
    nearest it, from ``levels``), w = beta^phi, r = gamma^phi. Training or a proxy per point would
    cost more than the search itself, so callers ask for accuracy only from a cheap estimator. A
    point that cannot be built is left out. ``box`` (a SearchSpace) holds width and resolution at its
    edges, as the two-step ray does under --extrapolation avoid."""
    a, b, g = coefficients
    points = []
    for phi in phis:
        d, w, r = a ** phi, b ** phi, g ** phi
        if box is not None:
            w, r = clamp(w, box.width), clamp(r, box.resolution)
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
