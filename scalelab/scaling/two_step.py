"""EfficientNet's two-step method (Tan & Le, "EfficientNet", ICML 2019, §3.3), with depth counted as
the blocks actually built.

Step 1 searches alpha, beta, gamma >= 1 with alpha * beta^2 * gamma^2 ~ 2 at phi = 1. Stage repeats
round up, so a depth multiplier builds one of a few distinct networks (``depth_levels``): alpha is
sampled among those (its value is the depth built), and beta and gamma share what is left of the
product, so the constraint holds for the network really built.

Step 2 raises phi as far as every budget allows (depth = the level nearest alpha^phi, width beta^phi,
resolution gamma^phi), then refines: the input grows in steps of 8 px, then the width grows, each
kept only while every budget holds, so the winner spends the budget that the coarse steps of phi
leave. Every network step 2 prices becomes a trial of a companion study ``<study>-phi``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from scalelab.errors import ScalelabError
from scalelab.scaling.candidates import Candidate, CandidateError, Evaluator, evaluate_trial
from scalelab.scaling.compound import DepthLevel, nearest_level
from scalelab.scaling.fitted import clamp, clamps
from scalelab.scaling.objectives import feasible
from scalelab.scaling.studies import record_trial
from scalelab.scaling.variants import combinations, label, searched

#: the resolution refinement's step, in pixels (EfficientNet's resolutions are multiples of 8 or 4)
PIXEL_STEP = 8
#: the width refinement stops when its bisection interval is this narrow
WIDTH_TOLERANCE = 0.002


def coefficients(alpha: float, beta_split: float, product: float) -> tuple[float, float, float]:
    """alpha, beta, gamma with alpha * beta^2 * gamma^2 = ``product`` exactly: beta and gamma split
    what alpha leaves of log(product), ``beta_split`` of it to 2 log beta (stick breaking)."""
    rest = max(0.0, math.log(product) - math.log(alpha))
    return alpha, math.exp(beta_split * rest / 2), math.exp((1 - beta_split) * rest / 2)


def step_one_levels(levels: list[DepthLevel], settings) -> list[DepthLevel]:
    """The depths step 1 may choose: built depth from x1 to the smallest product allowed."""
    cap = max(1.0, settings.product_target - settings.product_tolerance)
    return [lv for lv in levels if 1.0 <= lv.ratio <= cap + 1e-12]


def step_one_objective(evaluator: Evaluator, settings, levels: list[DepthLevel]):
    """Step 1: the most accurate alpha, beta, gamma on the constraint surface at phi = 1."""
    target, tol = settings.product_target, settings.product_tolerance
    choices = step_one_levels(levels, settings)

    def objective(trial):
        level = choices[trial.suggest_int("depth_level", 0, len(choices) - 1)]
        split = trial.suggest_float("beta_split", 0.0, 1.0)
        product = trial.suggest_float("product", max(1.0, target - tol), target + tol) if tol > 0 else target
        a, b, g = coefficients(level.ratio, split, product)
        for name, value in (("alpha", a), ("beta", b), ("gamma", g)):
            trial.set_user_attr(name, value)
        c = evaluate_trial(evaluator, trial, level.multiplier, b, g)
        record_trial(trial, c, (), True, c.accuracy)
        return c.accuracy

    return objective


@dataclass
class Refinement:
    """What step 2's refinement changed, and what stopped each part."""

    start: dict
    end: dict
    resolution_stop: str = ""
    width_stop: str = ""
    evaluations: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end, "resolution_stopped_by": self.resolution_stop,
                "width_stopped_by": self.width_stop, "evaluations": self.evaluations, "seconds": self.seconds}


@dataclass
class Ray:
    """Networks along d = alpha^phi (built depth), w = beta^phi, r = gamma^phi."""

    evaluator: Evaluator
    settings: Any
    levels: list[DepthLevel]
    coefficients: tuple[float, float, float]
    tried: dict = field(default_factory=dict)  # (multiplier, width, resolution) -> (Candidate, feasible)
    phis: dict = field(default_factory=dict)  # point -> the phi it was priced for
    avoid_extrapolation: bool = False  # a candidate outside the estimator's fitted range does not fit

    box: Any = None  # a SearchSpace: width and resolution held at its edges (--extrapolation avoid)

    def point(self, phi: float) -> tuple[float, float, float]:
        a, b, g = self.coefficients
        # held at the box's edges, or (no box) kept in the allowed ranges, which phi's end at
        # log(max) / log(beta) can pass by a rounding error; depth is held by ``levels``
        space = self.box if self.box is not None else self.settings.space
        w, r = clamp(b ** phi, space.width), clamp(g ** phi, space.resolution)
        return nearest_level(self.levels, a ** phi).multiplier, w, r

    def at(self, phi: float) -> bool:
        point = self.point(phi)
        self.phis.setdefault(point, phi)
        return self.fits(point)

    def fits(self, point: tuple[float, float, float]) -> bool:
        if point not in self.tried:
            try:
                c = self.evaluator.evaluate(*point)
                ok = feasible(self.settings.budgets, c.metrics) and not (self.avoid_extrapolation and c.extrapolated)
                self.tried[point] = (c, ok)
            except CandidateError:
                self.tried[point] = (None, False)
        return self.tried[point][1]

    def over(self, point: tuple[float, float, float]) -> str:
        """The budgets a point exceeds, as written ('400MFLOPs'), or why it cannot be built."""
        c = self.tried[point][0] if point in self.tried else None
        if c is None:
            return "the network cannot be built"
        over = [b.text for b in self.settings.budgets if c.metrics[b.metric] > b.limit]
        return ", ".join(over) if over else "the accuracy estimator's fitted range (--extrapolation avoid)"


def phi_range(coeffs: tuple[float, float, float], space, clamped: bool = False) -> tuple[float, float]:
    """The phis at which every multiplier stays inside the allowed ranges; ``clamped`` (a ray held at
    the edges of ``space``): those at which any multiplier still moves."""
    ends = [(math.log(low) / math.log(c), math.log(high) / math.log(c))
            for c, (low, high) in zip(coeffs, (space.depth, space.width, space.resolution)) if c > 1]
    if clamped:
        return max(-20.0, min(e[0] for e in ends)), min(20.0, max(e[1] for e in ends))
    return max([-20.0] + [e[0] for e in ends]), min([20.0] + [e[1] for e in ends])


def _feasible_start(ray: Ray, lo: float, hi: float) -> float:
    """A phi within the budgets to start from: phi = 0 (the base's size), else the first going down
    to the smallest phi allowed (a network too small to build fails like one over the budget)."""
    down = [0.0] + [-0.25 * k for k in range(1, int(-lo / 0.25) + 1)] + [lo]
    for phi in down:
        if lo <= phi <= hi and ray.at(phi):
            return phi
    a, b, g = ray.coefficients
    raise ScalelabError(f"budget {ray.settings.budgets[0].describe()} is impossible along alpha={a:.3f}, "
                        f"beta={b:.3f}, gamma={g:.3f}: no phi from {lo:.2f} to 0 gives a network within it")


def largest_phi(ray: Ray, space, phi_step: float) -> float:
    """The largest phi whose network meets every budget: bisection on a monotone cost, or the last
    feasible step."""
    lo, hi = phi_range(ray.coefficients, space, ray.box is not None)
    good = _feasible_start(ray, lo, hi)
    if phi_step > 0:
        k, best = math.ceil(good / phi_step - 1e-9), good
        while k * phi_step <= hi + 1e-9 and ray.at(k * phi_step):
            best, k = k * phi_step, k + 1
        return best
    if ray.at(hi):
        return hi
    bad = hi
    while bad - good > 1e-3:
        mid = (good + bad) / 2
        good, bad = (mid, bad) if ray.at(mid) else (good, mid)
    # a readable phi (two decimals) when it gives a network within the budgets too
    snaps = [p for p in (round(good, 2), math.floor(good * 100 + 1e-6) / 100) if p >= lo and ray.at(p)]
    return (max(snaps) if snaps else good) + 0.0  # + 0.0: no "-0.00"


def refine(ray: Ray, start: tuple[float, float, float], space) -> tuple[tuple[float, float, float], Refinement]:
    """Spend what the chosen phi leaves: input size up in steps of 8 px, then width up (bisection),
    each kept only while every budget holds and the multipliers stay in their ranges."""
    clock = time.perf_counter()
    before = len(ray.tried)
    ev = ray.evaluator
    base_px = ev.base_size[0]
    d, w, r = start
    step = math.lcm(PIXEL_STEP, ev.resolution_multiple)
    pixels = ev.pixels(r)[0]
    resolution_stop = f"the largest resolution allowed (x{space.resolution[1]:g})"
    while True:
        nxt = (d, w, (pixels + step) / base_px)
        if nxt[2] > space.resolution[1] + 1e-9:
            break
        if not ray.fits(nxt):
            resolution_stop = f"+{step} px would exceed {ray.over(nxt)}"
            break
        pixels, r = pixels + step, nxt[2]
    good, bad = w, space.width[1]
    width_stop = f"the largest width allowed (x{space.width[1]:g})"
    if not ray.fits((d, bad, r)):
        width_stop = f"a wider network would exceed {ray.over((d, bad, r))}"
        while bad - good > WIDTH_TOLERANCE:
            mid = (good + bad) / 2
            if ray.fits((d, mid, r)):
                good = mid
            else:
                bad = mid
                width_stop = f"width x{mid:.3f} would exceed {ray.over((d, mid, r))}"
    else:
        good = bad
    end = (d, good, r)
    return end, Refinement({"width": start[1], "pixels": ev.pixels(start[2])[0]},
                           {"width": good, "pixels": ev.pixels(r)[0]}, resolution_stop, width_stop,
                           len(ray.tried) - before, time.perf_counter() - clock)


@dataclass
class StepTwo:
    coefficients: Optional[tuple[float, float, float]]  # None: a direct search's winner refined
    phi: Optional[float]
    winner: Candidate
    tried: list[tuple[dict, Candidate, bool]]  # (params, candidate, feasible), the winner among them
    refinement: Optional[Refinement]


def step_two(evaluator: Evaluator, settings, levels: list[DepthLevel], best: Candidate) -> StepTwo:
    """The largest phi along the best step-1 coefficients, then the refinement."""
    coeffs = (best.depth, best.width, best.resolution)
    held = clamps(settings, evaluator)
    ray = Ray(evaluator, settings, levels, coeffs, box=settings.space if held else None)
    phi = largest_phi(ray, settings.space, settings.phi_step)
    end, refinement = refine(ray, ray.point(phi), settings.space)
    tried = []
    for point, (c, ok) in ray.tried.items():
        if c is not None:  # a refinement step is phi's network, wider or larger
            params = {"phi": ray.phis[point]} if point in ray.phis else {"phi": phi, "width": point[1], "pixels": c.pixels}
            tried.append((params, c, ok))
    return StepTwo(coeffs, phi, ray.tried[end][0], tried, refinement)


def refine_winner(evaluator: Evaluator, settings, levels: list[DepthLevel], best: Candidate) -> StepTwo:
    """A direct search's best trial, refined the same way (its winner spends the budget too)."""
    ray = Ray(evaluator, settings, levels, (1.0, 1.0, 1.0), avoid_extrapolation=settings.extrapolation == "avoid")
    assert best.depth_multiplier is not None  # every candidate a search evaluates records its multiplier
    start = (best.depth_multiplier, best.width, best.resolution)
    ray.tried[start] = (best, True)
    end, refinement = refine(ray, start, settings.space)
    tried = [({"width": point[1], "pixels": c.pixels}, c, ok) for point, (c, ok) in ray.tried.items() if c is not None]
    return StepTwo(None, None, ray.tried[end][0], tried, refinement)


# --------------------------------------------------------------------------------------------------
# Ensembles and crops: step 2 and the refinement once per (K, N) searched (scalelab.scaling.variants)


def _best_of(runs: list, settings):
    """Several step-2 runs (one per variant) as one: every network they priced, the best winner's."""
    win = max(runs, key=lambda two: settings.goal.key(two.winner))
    tried = [(p, c, ok) for two in runs for p, c, ok in two.tried]
    return StepTwo(win.coefficients, win.phi, win.winner, tried, win.refinement)


def step_two_variants(evaluator: Evaluator, settings, levels, best: Candidate):
    """The two-step method's step 2 for every (K, N) searched: the largest phi within the budgets and
    the refinement, per variant; the winner is the best of their winners by the search's objective. A
    variant that no phi brings within the budgets is left out; all of them: the first one's reason."""
    if not searched(settings):
        return step_two(evaluator, settings, levels, best)
    done, refused = [], []
    for k, n in combinations(settings):
        try:
            done.append(step_two(evaluator.variant(k, n), settings, levels, best))
        except ScalelabError as exc:
            refused.append(f"{label(k, n)}: {exc}")
    if not done:
        raise ScalelabError(f"no ensemble or crop count searched fits the budgets; {refused[0]}")
    return _best_of(done, settings)


def refine_best(evaluator: Evaluator, settings, levels, feasible: list, key):
    """The direct search's refinement (``two_step.refine_winner``) of its best trial by ``key``; when
    ensembles or crops are searched, of the best trial of each (K, N), so that every variant spends the
    budget before they are compared, and the winner is the best refined network."""
    if not searched(settings):
        return refine_winner(evaluator, settings, levels, max(feasible, key=key).candidate)
    groups: dict = {}
    for t in sorted(feasible, key=key, reverse=True):
        groups.setdefault((t.candidate.models, t.candidate.crops), t)
    runs = [refine_winner(evaluator.variant(*kn), settings, levels, t.candidate) for kn, t in groups.items()]
    return _best_of(runs, settings)
