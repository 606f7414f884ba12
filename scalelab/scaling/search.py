"""Budgeted search of compound scalings with Optuna.

Two methods:

- ``direct``: sample (depth, width, resolution) multipliers (log-uniform in the allowed ranges) and
  keep the best candidate within the budgets.
- ``two-step`` (Tan & Le, "EfficientNet", ICML 2019, §3.3): at phi = 1 search alpha, beta, gamma >= 1
  with alpha * beta^2 * gamma^2 ~ 2 (sampled on that surface, within a tolerance) for the best accuracy; then
  raise phi (continuously, or in steps) as far as the budgets allow. Each phi tried is recorded as
  a trial of a companion study ``<study>-phi``.

Objectives: the MnasNet reward (``scalelab.scaling.objectives``), or a Pareto search of accuracy
against the first budget's cost. Hard budgets reach the sampler through ``Trial.set_constraint``.
Studies live in an Optuna storage (SQLite file by default) and resume: the same study name and
storage continue where they stopped, up to the requested total of trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Sequence

from scalelab.errors import ScalelabError
from scalelab.scaling.budget import Budget
from scalelab.scaling.candidates import Candidate, Evaluator
from scalelab.scaling.objectives import Constraint, Point, feasible, mnas_reward, pareto_front, violations
from scalelab.scaling.storages import DEFAULT_HEARTBEAT
from scalelab.scaling.studies import (
    SAMPLERS, TrialRecord, add_companion_trials, count_finished, make_sampler, open_storage, open_study, quiet_optuna,
    read_records, record_trial,
)
from scalelab.scaling.workers import run_trials

Method = Literal["direct", "two-step"]
Objective = Literal["reward", "pareto"]


@dataclass(frozen=True)
class SearchSpace:
    """Allowed multipliers of the base network (the resolution one multiplies its input size)."""

    depth: tuple[float, float] = (0.25, 4.0)
    width: tuple[float, float] = (0.25, 3.0)
    resolution: tuple[float, float] = (0.25, 3.0)

    def check(self) -> None:
        for what, (low, high) in (("depth", self.depth), ("width", self.width), ("resolution", self.resolution)):
            if not 0 < low <= high:
                raise ScalelabError(f"{what} range must satisfy 0 < min <= max, got {low:g}..{high:g}")


@dataclass(frozen=True)
class SearchSettings:
    budgets: tuple[Budget, ...]
    method: Method = "direct"
    objective: Objective = "reward"
    constraint: Constraint = "hard"
    soft_w: float = -0.07
    trials: int = 100
    seed: int = 0
    sampler: str = "tpe"
    space: SearchSpace = SearchSpace()
    product_target: float = 2.0  # alpha * beta^2 * gamma^2 at phi = 1
    product_tolerance: float = 0.1
    phi_step: float = 0.0  # 0: continuous phi
    #: "avoid": the direct search only accepts candidates whose accuracy estimate lies inside the
    #: range the estimator was fitted on; "allow": extrapolated estimates count too (flagged)
    extrapolation: Literal["avoid", "allow"] = "avoid"

    def fingerprint(self, evaluator: Evaluator) -> dict[str, Any]:
        """What a stored study must agree with for this run to continue it."""
        return {
            "base": evaluator.base.name, "method": self.method, "objective": self.objective,
            "constraint": self.constraint, "soft_w": self.soft_w,
            "budgets": [f"{b.metric}<={b.limit:g}" for b in self.budgets],
            "space": [list(self.space.depth), list(self.space.width), list(self.space.resolution)],
            "accuracy": evaluator.accuracy_method, "device": evaluator.device, "dtype": evaluator.dtype,
            "batch": evaluator.batch, "divisor": evaluator.divisor, "resolution_multiple": evaluator.resolution_multiple,
            "product": [self.product_target, self.product_tolerance], "extrapolation": self.extrapolation,
            "seed": self.seed, "sampler": self.sampler,
        }


@dataclass
class SearchResult:
    settings: SearchSettings
    study_name: str
    storage: str
    trials: list[TrialRecord]  # every completed trial of the study
    winner: TrialRecord
    pareto: list[TrialRecord]
    new_trials: int  # run by this call (the rest were already in the storage)
    coefficients: Optional[tuple[float, float, float]] = None  # two-step: alpha, beta, gamma
    phi: Optional[float] = None
    phi_trials: list[TrialRecord] = field(default_factory=list)

    def ranked(self, top: int = 10) -> list[TrialRecord]:
        """The best feasible candidates, best first, without repeating a network."""
        seen, out = set(), []
        pool = self.phi_trials if self.settings.method == "two-step" else self.trials
        for t in sorted((t for t in pool if t.feasible), key=lambda t: (-t.value, t.candidate.macs)):
            key = (t.candidate.macs, t.candidate.params, t.candidate.pixels)
            if key not in seen:
                seen.add(key)
                out.append(t)
        return out[:top]


# --------------------------------------------------------------------------------------------------
# The search


def check_reachable(evaluator: Evaluator, settings: SearchSettings) -> dict[str, Any]:
    """Refuse a budget that even the smallest scaling allowed exceeds."""
    space = settings.space
    floor = evaluator.metrics_at(space.depth[0], space.width[0], space.resolution[0])
    over = [b for b in settings.budgets if floor[b.metric] > b.limit]
    if over:
        b = over[0]
        raise ScalelabError(
            f"budget {b.describe()} is impossible: the smallest scaling allowed (depth x{space.depth[0]:g}, "
            f"width x{space.width[0]:g}, resolution {floor['pixels']}) already needs "
            f"{_fmt_metric(b.metric, floor[b.metric])}; raise the budget or lower --min-depth/--min-width/--min-resolution"
        )
    return floor


def _fmt_metric(metric: str, value: float) -> str:
    return {"macs": f"{value:,.0f} MACs", "params": f"{value:,.0f} parameters",
            "latency": f"{value:.3g} ms", "memory": f"{value:,.0f} bytes"}[metric]


def run_search(
    evaluator: Evaluator,
    settings: SearchSettings,
    *,
    storage: Optional[str] = None,
    study_name: Optional[str] = None,
    progress: bool = False,
    callbacks: Sequence[Callable] = (),
    heartbeat: int = DEFAULT_HEARTBEAT,
    stop_requested: Callable[[], bool] = lambda: False,
    trials_only: bool = False,
) -> Optional[SearchResult]:
    """Run (or continue) the search until the study holds ``settings.trials`` done trials, counting
    those of every worker on it (``scaling.workers``). ``trials_only``: a worker that runs trials
    and leaves choosing and reporting the winner to another process (returns None)."""

    settings.space.check()
    if settings.trials < 1:
        raise ScalelabError(f"--trials must be at least 1, got {settings.trials}")
    if settings.objective == "pareto" and settings.method == "two-step":
        raise ScalelabError("the Pareto objective applies to the direct search; the two-step method picks phi by the budget")
    check_reachable(evaluator, settings)
    quiet_optuna()
    store = open_storage(storage, heartbeat)
    name = study_name or default_study_name(evaluator, settings)
    pareto = settings.objective == "pareto"
    hard = settings.constraint == "hard" or pareto
    directions = ["maximize", "minimize"] if pareto else ["maximize"]
    if settings.sampler not in SAMPLERS:
        raise ScalelabError(f"sampler must be one of {', '.join(SAMPLERS)}, got '{settings.sampler}'")
    factory = lambda seed: make_sampler(settings.sampler, seed)  # noqa: E731
    study = open_study(store, name, directions, settings.fingerprint(evaluator), factory, settings.seed)
    if settings.method == "two-step":
        objective = _two_step_objective(evaluator, settings)
    else:
        objective = _direct_objective(evaluator, settings, hard)

    before = count_finished(study)
    run_trials(study, objective, settings.trials, catch=(ScalelabError,), progress=progress,
               callbacks=list(callbacks), stop_requested=stop_requested)
    if trials_only or stop_requested():
        return None
    records = read_records(study)
    new = count_finished(study) - before
    primary = settings.budgets[0].metric
    front_points = pareto_front(Point(t.candidate.metrics[primary], t.candidate.accuracy, t) for t in records if t.feasible)
    front = [p.key for p in front_points]

    if settings.method == "two-step":
        coeffs, phi, phi_trials = _choose_phi(evaluator, settings, records, store, name)
        winner = phi_trials[0]  # the largest phi within the budgets
        # step 1's trials sit at phi = 1; the candidates under the budget are the phis tried
        front = [p.key for p in pareto_front(Point(t.candidate.metrics[primary], t.candidate.accuracy, t)
                                             for t in phi_trials if t.feasible)]
        return SearchResult(settings, name, _storage_name(storage), records, winner, front, new, coeffs, phi, phi_trials)

    feasible_trials = [t for t in records if t.feasible]
    if not feasible_trials:
        within = " within the accuracy estimator's fitted range" if settings.extrapolation == "avoid" else ""
        hint = " or --extrapolation allow" if within else ""
        raise ScalelabError(f"none of the {len(records)} trials of study '{name}' met the budget{within}; run more "
                            f"trials (--trials), narrow the ranges{hint}")
    if pareto:
        winner = max(feasible_trials, key=lambda t: (t.candidate.accuracy, -t.candidate.metrics[primary]))
    else:
        winner = max(feasible_trials, key=lambda t: (t.value, -t.candidate.macs))
    return SearchResult(settings, name, _storage_name(storage), records, winner, front, new)


def _storage_name(storage: Optional[str]) -> str:
    return storage if storage not in (None, "", ":memory:") else "memory"


def default_study_name(evaluator: Evaluator, settings: SearchSettings) -> str:
    budgets = "+".join(b.text.replace(" ", "") for b in settings.budgets)
    device = f"-{evaluator.device}" if evaluator.device else ""
    mode = "pareto" if settings.objective == "pareto" else settings.constraint
    return f"{evaluator.base.name}-{settings.method}-{mode}-{budgets}{device}-{evaluator.accuracy_method}"


def _score(c: Candidate, settings: SearchSettings) -> tuple[list[float], bool, float]:
    cons = violations(settings.budgets, c.metrics)
    ok = feasible(settings.budgets, c.metrics)
    usages = [b.usage(c.metrics[b.metric]) for b in settings.budgets]
    return cons, ok, mnas_reward(c.accuracy, usages, settings.constraint, settings.soft_w)


def _direct_objective(evaluator: Evaluator, settings: SearchSettings, hard: bool):
    space = settings.space
    primary = settings.budgets[0].metric

    def objective(trial):
        d = trial.suggest_float("depth", *space.depth, log=True)
        w = trial.suggest_float("width", *space.width, log=True)
        r = trial.suggest_float("resolution", *space.resolution, log=True)
        pruning = settings.objective != "pareto"  # Optuna prunes single-objective studies only
        c = evaluator.evaluate(d, w, r, trial if pruning else None)
        cons, ok, reward = _score(c, settings)
        if hard:  # Optuna's constraint API: the sampler learns where the feasible region is
            for budget, value in zip(settings.budgets, cons):
                trial.set_constraint(budget.metric, value)
        if settings.extrapolation == "avoid":
            ok = ok and not c.extrapolated
            if hard:
                trial.set_constraint("fitted_range", 1.0 if c.extrapolated else 0.0)
        if settings.objective == "pareto":
            record_trial(trial, c, settings.budgets, ok, c.accuracy)
            return c.accuracy, float(c.metrics[primary])
        record_trial(trial, c, settings.budgets, ok, reward)
        return reward

    return objective


def coefficients(params: dict, target: float) -> tuple[float, float, float]:
    """alpha, beta, gamma from step 1's sampled parameters, on the constraint surface by construction:
    log alpha, 2 log beta and 2 log gamma split log(alpha * beta^2 * gamma^2) = log(product) between
    them (stick breaking), so all three are >= 1 and the product is exactly the sampled one."""
    total = math.log(params.get("product", target))
    log_a = params["alpha_share"] * total
    log_b = params["beta_split"] * (total - log_a) / 2
    log_g = (1 - params["beta_split"]) * (total - log_a) / 2
    return math.exp(log_a), math.exp(log_b), math.exp(log_g)


def _two_step_objective(evaluator: Evaluator, settings: SearchSettings):
    """Step 1: the best alpha, beta, gamma at phi = 1 with alpha * beta^2 * gamma^2 within the tolerance
    of the target. Sampling on that surface (``coefficients``) spends no trial on a point the grid search
    of Tan & Le (§3.3) would not consider."""
    target, tol = settings.product_target, settings.product_tolerance

    def objective(trial):
        params = {"alpha_share": trial.suggest_float("alpha_share", 0.0, 1.0),
                  "beta_split": trial.suggest_float("beta_split", 0.0, 1.0)}
        if tol > 0:
            params["product"] = trial.suggest_float("product", max(1.0, target - tol), target + tol)
        a, b, g = coefficients(params, target)
        for name, value in (("alpha", a), ("beta", b), ("gamma", g)):
            trial.set_user_attr(name, value)
        c = evaluator.evaluate(a, b, g, trial)
        record_trial(trial, c, (), True, c.accuracy)
        return c.accuracy

    return objective


def _choose_phi(evaluator: Evaluator, settings: SearchSettings, records: list[TrialRecord], store, name: str):
    """Step 2: the largest phi whose network meets every budget (bisection on a monotone cost, or
    the last feasible step). Every phi evaluated becomes a trial of ``<name>-phi``."""
    import optuna

    step1 = [t for t in records if t.feasible]
    if not step1:
        raise ScalelabError(f"no trial of study '{name}' met alpha*beta^2*gamma^2 = {settings.product_target:g} "
                            f"+- {settings.product_tolerance:g}; run more trials or widen --product-tolerance")
    best = max(step1, key=lambda t: t.value)
    a, b, g = coefficients(best.params, settings.product_target)
    space = settings.space
    # phi range where every multiplier stays inside the allowed ranges
    lo = max(math.log(space.depth[0]) / math.log(a) if a > 1 else -math.inf,
             math.log(space.width[0]) / math.log(b) if b > 1 else -math.inf,
             math.log(space.resolution[0]) / math.log(g) if g > 1 else -math.inf)
    hi = min(math.log(space.depth[1]) / math.log(a) if a > 1 else math.inf,
             math.log(space.width[1]) / math.log(b) if b > 1 else math.inf,
             math.log(space.resolution[1]) / math.log(g) if g > 1 else math.inf)
    lo, hi = max(lo, -20.0), min(hi, 20.0)
    tried: dict[float, tuple[Candidate, bool]] = {}

    def at(phi: float) -> bool:
        phi = round(phi, 6)
        if phi not in tried:
            c = evaluator.evaluate(a ** phi, b ** phi, g ** phi)
            tried[phi] = (c, feasible(settings.budgets, c.metrics))
        return tried[phi][1]

    if not at(lo):
        raise ScalelabError(f"budget {settings.budgets[0].describe()} is impossible along alpha={a:.3f}, beta={b:.3f}, "
                            f"gamma={g:.3f}: even phi={lo:.2f} exceeds it")
    if settings.phi_step > 0:
        step = settings.phi_step
        k = math.ceil(lo / step - 1e-9)
        best_phi = lo
        while k * step <= hi + 1e-9 and at(k * step):
            best_phi = k * step
            k += 1
    elif at(hi):
        best_phi = hi
    else:
        good, bad = lo, hi
        while bad - good > 1e-3:
            mid = (good + bad) / 2
            good, bad = (mid, bad) if at(mid) else (good, mid)
        # report a readable phi (two decimals) when it gives a network within the budgets too
        snaps = [p for p in (round(good, 2), math.floor(good * 100 + 1e-6) / 100) if p >= lo and at(p)]
        best_phi = (max(snaps) if snaps else good) + 0.0  # + 0.0: no "-0.00"

    dist = {"phi": optuna.distributions.FloatDistribution(lo, hi)}
    phi_records, frozen_trials = [], []
    for phi, (c, ok) in sorted(tried.items()):
        cons, _, reward = _score(c, settings)
        usage = {bb.metric: bb.usage(c.metrics[bb.metric]) for bb in settings.budgets}
        attrs = {"macs": c.macs, "params": c.params, "accuracy": c.accuracy, "accuracy_method": c.accuracy_method,
                 "alpha": a, "beta": b, "gamma": g,
                 "candidate": {**c.as_dict(), "feasible": ok, "value": reward, "usage": usage}}
        if c.latency_ms is not None:
            attrs["latency_ms"] = c.latency_ms
        frozen = optuna.trial.create_trial(params={"phi": min(max(phi, lo), hi)}, distributions=dist, value=reward,
                                           user_attrs=attrs, constraints={bb.metric: v for bb, v in zip(settings.budgets, cons)})
        frozen_trials.append(frozen)
        phi_records.append(TrialRecord(len(phi_records), c, ok, reward, {"phi": phi}))
    add_companion_trials(store, f"{name}-phi", frozen_trials)  # created once, shared by workers and reruns
    chosen = round(best_phi, 6)
    # the chosen phi first: it is the winner
    phi_records.sort(key=lambda r: r.params["phi"] != chosen)
    return (a, b, g), best_phi, phi_records


def scaling_curve(evaluator: Evaluator, coefficients: tuple[float, float, float],
                  phis: Sequence[float], with_accuracy: bool = True) -> list[dict[str, Any]]:
    """Cost (and, when ``with_accuracy``, estimated accuracy) along d = alpha^phi, w = beta^phi,
    r = gamma^phi. Training or a proxy per point would cost more than the search itself, so
    callers ask for accuracy only from a cheap estimator."""
    a, b, g = coefficients
    points = []
    for phi in phis:
        d, w, r = a ** phi, b ** phi, g ** phi
        if with_accuracy:
            points.append({"phi": phi, **evaluator.evaluate(d, w, r).as_dict()})
        else:
            m = evaluator.metrics_at(d, w, r)
            points.append({"phi": phi, "depth": d, "width": w, "resolution": r, "pixels": m["pixels"],
                           "macs": m["macs"], "params": m["params"], "accuracy": None})
    return points
