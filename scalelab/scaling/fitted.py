"""Where ``--extrapolation avoid`` searches: the allowed ranges narrowed to the multipliers the
scaling-law estimator was fitted on, so that the candidates sampled have estimates inside them; and,
where no network in that range meets the budgets, a search of the whole allowed ranges with a note
that says so (in the output and the report).

Depth is narrowed to the levels whose built depth (blocks / the base's blocks) lies in the fitted
depth range, resolution to the input sizes (after rounding to pixels) whose multiplier does, width
to the fitted width range. The two-step method's ray then holds a dimension at the range's edge
(``clamp``) where alpha^phi, beta^phi or gamma^phi would leave it, and scales the others on.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from scalelab.scaling import variants
from scalelab.scaling.accuracy import law_of
from scalelab.scaling.budget import metric_text
from scalelab.scaling.candidates import CandidateError, Evaluator
from scalelab.scaling.compound import depth_levels


def clamps(settings, evaluator) -> bool:
    """Whether the search samples (and the two-step ray stays) inside the estimator's fitted range."""
    return settings.extrapolation == "avoid" and evaluator.accuracy_method == "scaling-law"


def clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def _fitted_ranges(base) -> dict:
    """The multipliers the base's law was fitted on (its family's and protocol's: ``law_of``)."""
    return law_of(base).ranges


def _pixel_bounds(base_px: int, multiple: int, low: float, high: float) -> Optional[tuple[float, float]]:
    """Resolution multipliers whose rounded input size lies in [low, high] x the base's."""
    first = math.ceil(low * base_px / multiple - 1e-9) * multiple
    last = math.floor(high * base_px / multiple + 1e-9) * multiple
    return (first / base_px, last / base_px) if multiple <= first <= last else None


def fitted_space(evaluator: Evaluator, space):
    """``space`` narrowed to the estimator's fitted range; None where the two do not meet."""
    ranges = _fitted_ranges(evaluator.base)
    levels = [lv for lv in depth_levels(evaluator.base, *space.depth)
              if ranges["depth"][0] * (1 - 1e-9) <= lv.ratio <= ranges["depth"][1] * (1 + 1e-9)]
    width = (max(space.width[0], ranges["width"][0]), min(space.width[1], ranges["width"][1]))
    pixels = _pixel_bounds(evaluator.base_size[0], evaluator.resolution_multiple,
                           max(space.resolution[0], ranges["resolution"][0]), min(space.resolution[1], ranges["resolution"][1]))
    if not levels or width[0] > width[1] or pixels is None:
        return None
    return dataclasses.replace(space, depth=(levels[0].multiplier, levels[-1].multiplier), width=width, resolution=pixels)


def describe_range(base) -> str:
    r = _fitted_ranges(base)
    return (f"depth x{r['depth'][0]:.3g}-x{r['depth'][1]:.3g} as blocks built, width x{r['width'][0]:.3g}-"
            f"x{r['width'][1]:.3g}, resolution x{r['resolution'][0]:.3g}-x{r['resolution'][1]:.3g}")


def narrow(evaluator: Evaluator, settings):
    """(the settings the search runs with, what the output and report say about extrapolation).

    ``--extrapolation avoid`` with the scaling-law estimator: the fitted range where a network in it
    meets every budget; otherwise the allowed ranges, searched as with ``--extrapolation allow``."""
    if not clamps(settings, evaluator):
        return settings, ""
    box = fitted_space(evaluator, settings.space)
    fitted = f"the range the accuracy estimator was fitted on ({describe_range(evaluator.base)})"
    if box is None:
        why = "the allowed ranges (--min-/--max-depth, width, resolution) lie outside " + fitted
        return dataclasses.replace(settings, extrapolation="allow"), _unmet(why)
    cheapest = variants.smallest(evaluator, settings)
    try:
        floor = cheapest.metrics_at(box.depth[0], box.width[0], box.resolution[0])
    except CandidateError:  # the range's smallest network cannot be built: larger ones may be
        floor = {}
    over = [b for b in settings.budgets if b.metric in floor and floor[b.metric] > b.limit]
    if over:
        why = (f"the smallest network inside {fitted}, width x{box.width[0]:.3g} at {floor['pixels']} px with the "
               f"fewest blocks, needs {metric_text(over[0].metric, floor[over[0].metric])}, over {over[0].text}")
        return dataclasses.replace(settings, extrapolation="allow"), _unmet(why)
    return (dataclasses.replace(settings, space=box),
            f"--extrapolation avoid: every candidate searched lies inside {fitted}")


def _unmet(why: str) -> str:
    return (f"--extrapolation avoid cannot be met: {why}; the search used the whole allowed ranges, and "
            "estimates outside the fitted range are marked extrapolated (*)")
