"""Budgeted search of compound scalings with Optuna.

Two methods:

- ``direct``: sample (depth, width, resolution) multipliers (log-uniform in the allowed ranges) and
  keep the best candidate within the budgets.
- ``two-step`` (Tan & Le, "EfficientNet", ICML 2019, §3.3; ``scalelab.scaling.two_step``): at phi = 1
  search alpha, beta, gamma >= 1 with alpha * beta^2 * gamma^2 ~ 2 for the best accuracy; then raise
  phi as far as the budgets allow and refine resolution and width to spend what is left. Each network
  priced in step 2 is recorded as a trial of a companion study ``<study>-phi``.

Depth is searched among the distinct networks depth multipliers build (``depth_levels``) and
reported as the blocks built. A candidate that cannot be built is a failed trial with its reason;
the study goes on. With ``--ensembles``/``--crops`` a candidate may also be an ensemble and/or
multi-crop test of its network (``scalelab.scaling.variants``).

Objectives: the MnasNet reward (``scalelab.scaling.objectives``), or a Pareto search of accuracy
against the first budget's cost. Hard budgets reach the sampler through ``Trial.set_constraint``.
Studies live in an Optuna storage (SQLite file by default) and resume: the same study name and
storage continue where they stopped, up to the requested total of trials. With a SQLite file the
trials are written in batches every few seconds (``scalelab.scaling.batching``); a server database
is written trial by trial, so that several workers share one study as it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Optional, Sequence

from scalelab.errors import ScalelabError
from scalelab.limits import MAX_CROPS, MAX_ENSEMBLE
from scalelab.scaling import fitted, variants
from scalelab.scaling.batching import BatchedStudy, batches
from scalelab.scaling.budget import Budget, metric_text
from scalelab.scaling.candidates import CandidateError, Evaluator, evaluate_trial
from scalelab.scaling.compound import DepthLevel, depth_levels
from scalelab.scaling.objectives import Constraint, Objective, ObjectiveName, Point, feasible, pareto_front, violations
from scalelab.scaling.storages import DEFAULT_HEARTBEAT
from scalelab.scaling.studies import (
    SAMPLERS, TrialRecord, add_companion_trials, count_finished, make_sampler, open_storage, open_study, quiet_optuna,
    read_records, record_trial,
)
from scalelab.scaling.two_step import StepTwo, phi_range, refine_best, step_one_objective, step_two_variants
from scalelab.scaling.workers import run_trials

Method = Literal["direct", "two-step"]


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
    objective: ObjectiveName = "reward"
    constraint: Constraint = "hard"
    soft_w: float = -0.07
    trials: int = 100
    seed: int = 0
    sampler: str = "tpe"
    space: SearchSpace = SearchSpace()
    product_target: float = 2.0  # alpha * beta^2 * gamma^2 at phi = 1
    product_tolerance: float = 0.1
    phi_step: float = 0.0  # 0: continuous phi
    #: "avoid": the search samples inside the range the scaling-law estimator was fitted on, where a
    #: network in it meets the budgets (``scaling.fitted``); "allow": extrapolated estimates count too (flagged)
    extrapolation: Literal["avoid", "allow"] = "avoid"
    #: ensemble sizes and test-crop counts each candidate may also take (``scaling.variants``)
    ensembles: tuple[int, ...] = (1,)
    crops: tuple[int, ...] = (1,)

    @property
    def goal(self) -> Objective:
        """What ``objective`` names, under these budgets."""
        return Objective(self.objective, self.budgets, self.constraint, self.soft_w)

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
            "seed": self.seed, "sampler": self.sampler, "variants": [list(self.ensembles), list(self.crops)],
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
    failed: list[tuple[int, str]] = field(default_factory=list)  # (trial number, why it could not be built)
    refinement: Optional[dict] = None  # what the refinement changed and what stopped it
    refined: list[TrialRecord] = field(default_factory=list)  # direct: the best trial and its refinements
    extrapolation: str = ""  # where --extrapolation avoid searched, or why it could not be met

    def ranked(self, top: int = 10) -> list[TrialRecord]:
        """The best feasible candidates, best first, without repeating a network."""
        seen, out = set(), []
        pool = self.phi_trials if self.settings.method == "two-step" else self.trials + self.refined
        for t in sorted((t for t in pool if t.feasible), key=lambda t: (-t.value, t.candidate.macs)):
            key = (t.candidate.macs, t.candidate.params, t.candidate.pixels)
            if key not in seen:
                seen.add(key)
                out.append(t)
        return out[:top]


# --------------------------------------------------------------------------------------------------
# The search


def check_reachable(evaluator: Evaluator, settings: SearchSettings) -> dict[str, Any]:
    """Refuse a budget that even the smallest scaling allowed (and fewest models and crops) exceeds."""
    space = settings.space
    variants.check(evaluator, settings)
    cheapest = variants.smallest(evaluator, settings)
    try:
        floor = cheapest.metrics_at(space.depth[0], space.width[0], space.resolution[0])
    except CandidateError:  # the smallest scaling cannot be built: its trials fail, larger ones run
        return {}
    over = [b for b in settings.budgets if floor[b.metric] > b.limit]
    if over:
        b = over[0]
        raise ScalelabError(
            f"budget {b.describe()} is impossible: the smallest scaling allowed (depth x{space.depth[0]:g}, "
            f"width x{space.width[0]:g}, resolution {floor['pixels']}{variants.words(cheapest)}) already needs "
            f"{metric_text(b.metric, floor[b.metric])}; raise the budget or lower --min-depth/--min-width/--min-resolution"
        )
    return floor


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
    shared: bool = False,
    ready: Callable[[], None] = lambda: None,
) -> Optional[SearchResult]:
    """Run (or continue) the search until the study holds ``settings.trials`` done trials, counting
    those of every worker on it (``scaling.workers``). ``shared``: other processes may work on the
    study, so a SQLite file is written trial by trial, not in batches. ``trials_only``: a worker that
    runs trials and leaves choosing and reporting the winner to another process (returns None).
    ``ready`` is called once the study is open, before the first trial (local workers start together)."""

    settings.space.check()
    if settings.trials < 1:
        raise ScalelabError(f"--trials must be at least 1, got {settings.trials}")
    goal = settings.goal
    goal.check_method(settings.method)
    check_reachable(evaluator, settings)
    quiet_optuna()
    store = open_storage(storage, heartbeat)
    name = study_name or default_study_name(evaluator, settings)
    if settings.sampler not in SAMPLERS:
        raise ScalelabError(f"sampler must be one of {', '.join(SAMPLERS)}, got '{settings.sampler}'")
    factory = lambda seed: make_sampler(settings.sampler, seed)  # noqa: E731
    study = open_study(store, name, goal.directions, settings.fingerprint(evaluator), factory, settings.seed)
    settings, avoidance = fitted.narrow(evaluator, settings)  # the fingerprint keeps the settings as given
    levels = depth_levels(evaluator.base, *settings.space.depth)
    if settings.method == "two-step":
        objective = step_one_objective(evaluator, settings, levels)
    else:
        objective = _direct_objective(evaluator, settings, levels)

    before = count_finished(study)
    ready()
    _optimize(study, store, storage if not shared else None, objective, settings.trials, progress, list(callbacks),
              stop_requested)
    if trials_only or stop_requested():
        return None
    records = read_records(study)
    done = _Done(store, name, _storage_name(storage), records, count_finished(study) - before, read_failures(study))
    result = (_two_step_result if settings.method == "two-step" else _direct_result)(evaluator, settings, levels, done)
    result.extrapolation = avoidance
    return result


@dataclass
class _Done:
    """What the study holds once its trials have run."""

    store: Any
    name: str
    storage: str
    records: list[TrialRecord]
    new: int
    failed: list[tuple[int, str]]


def _front(records: list[TrialRecord], metric: str) -> list[TrialRecord]:
    return [p.key for p in pareto_front(Point(t.candidate.metrics[metric], t.candidate.accuracy, t)
                                        for t in records if t.feasible)]


def _two_step_result(evaluator: Evaluator, settings: SearchSettings, levels, done: _Done) -> SearchResult:
    step1 = [t for t in done.records if t.feasible]
    if not step1:
        raise ScalelabError(f"no trial of study '{done.name}' could be built at alpha*beta^2*gamma^2 = "
                            f"{settings.product_target:g} +- {settings.product_tolerance:g}{_failure_hint(done.failed)}")
    two = step_two_variants(evaluator, settings, levels, max(step1, key=lambda t: t.value).candidate)
    phi_trials = _record_step_two(done.store, f"{done.name}-phi", settings, two,
                                  phi_range(two.coefficients, settings.space, fitted.clamps(settings, evaluator)))
    # step 1's trials sit at phi = 1; the candidates under the budget are the networks step 2 priced
    front = _front(phi_trials, settings.budgets[0].metric)
    return SearchResult(settings, done.name, done.storage, done.records, phi_trials[0], front, done.new,
                        two.coefficients, two.phi, phi_trials, done.failed, two.refinement.as_dict())


def _direct_result(evaluator: Evaluator, settings: SearchSettings, levels, done: _Done) -> SearchResult:
    feasible_trials = [t for t in done.records if t.feasible]
    if not feasible_trials:
        within = " within the accuracy estimator's fitted range" if settings.extrapolation == "avoid" else ""
        hint = " or --extrapolation allow" if within else ""
        raise ScalelabError(f"none of the {len(done.records)} trials of study '{done.name}' met the budget{within}; "
                            f"run more trials (--trials), narrow the ranges{hint}{_failure_hint(done.failed)}")
    primary = settings.budgets[0].metric
    goal = settings.goal
    refined = refine_best(evaluator, settings, levels, feasible_trials, lambda t: goal.rank(t.value, t.candidate))
    records_refined = _record_step_two(done.store, f"{done.name}-refine", settings, refined, None)
    return SearchResult(settings, done.name, done.storage, done.records, records_refined[0],
                        _front(done.records, primary), done.new, failed=done.failed,
                        refinement=refined.refinement.as_dict(), refined=records_refined)


def _optimize(study, store, url: Optional[str], objective, target: int, progress: bool, callbacks: list,
              stop_requested: Callable[[], bool]) -> None:
    """Run trials until the study holds ``target`` (``workers.run_trials``); with a private SQLite file
    (``url``; None for a study shared by workers) in an in-memory copy written back in batches."""
    if not batches(url):
        run_trials(study, objective, target, catch=(ScalelabError,), progress=progress, callbacks=callbacks,
                   stop_requested=stop_requested)
        return
    batched = BatchedStudy(study, store)
    with batched as working:
        run_trials(working, objective, target, catch=(ScalelabError,), progress=progress,
                   callbacks=[batched.flush_callback, *callbacks], stop_requested=stop_requested)


def _failure_hint(failed: list[tuple[int, str]]) -> str:
    return f" ({len(failed)} trials could not be built, e.g. {failed[0][1]})" if failed else ""


def read_failures(study) -> list[tuple[int, str]]:
    """Trials whose network could not be built, with the reason each recorded."""
    import optuna

    return [(t.number, t.user_attrs["failed"]) for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
            if "failed" in t.user_attrs]


def _storage_name(storage: Optional[str]) -> str:
    return storage if storage not in (None, "", ":memory:") else "memory"


def default_study_name(evaluator: Evaluator, settings: SearchSettings) -> str:
    """The name is also the report files' stem, so its parts join with characters file names keep as
    they are; a FLOPs budget under the hardware convention says so (800MFLOPs allows half the MACs)."""
    budgets = "_".join(b.text.replace(" ", "") + ("-hardware" if b.flops_convention == "hardware" and "flop" in
                                                   b.text.lower() else "") for b in settings.budgets)
    device = f"-{evaluator.device}" if evaluator.device else ""
    return (f"{evaluator.base.name}-{settings.method}-{settings.goal.label}-{budgets}{device}-{evaluator.accuracy_method}"
            + variants.study_suffix(settings))


def _direct_objective(evaluator: Evaluator, settings: SearchSettings, levels: list[DepthLevel]):
    """Depth is one of the distinct networks the depth range builds (shallowest first), width and
    resolution log-uniform multipliers."""
    space = settings.space
    goal = settings.goal

    def objective(trial):
        d = levels[trial.suggest_int("depth_level", 0, len(levels) - 1)].multiplier
        w = trial.suggest_float("width", *space.width, log=True)
        r = trial.suggest_float("resolution", *space.resolution, log=True)
        c = evaluate_trial(evaluator.variant(*variants.sample(trial, settings)), trial, d, w, r, goal.prunable)
        ok = feasible(settings.budgets, c.metrics)
        if goal.constrained:  # Optuna's constraint API: the sampler learns where the feasible region is
            for budget, value in zip(settings.budgets, violations(settings.budgets, c.metrics)):
                trial.set_constraint(budget.metric, value)
        if settings.extrapolation == "avoid":
            ok = ok and not c.extrapolated
            if goal.constrained:
                trial.set_constraint("fitted_range", 1.0 if c.extrapolated else 0.0)
        record_trial(trial, c, settings.budgets, ok, goal.score(c))
        return goal.value(c)

    return objective


def _record_step_two(store, phi_name: str, settings: SearchSettings, two: StepTwo, span) -> list[TrialRecord]:
    """Every network step 2 (or a direct search's refinement) priced, as trials of a companion study
    (created once and shared by workers and reruns; a trial already there is not added again), the winner first."""
    import optuna

    dist = {"phi": optuna.distributions.FloatDistribution(*(span or (0.0, 1.0))),
            "width": optuna.distributions.FloatDistribution(*settings.space.width),
            "pixels": optuna.distributions.IntDistribution(1, 1 << 20),
            "models": optuna.distributions.IntDistribution(1, MAX_ENSEMBLE),
            "crops": optuna.distributions.IntDistribution(1, MAX_CROPS)}
    frozen: list[optuna.trial.FrozenTrial] = []
    records: list[TrialRecord] = []
    for params, c, ok in sorted(two.tried, key=lambda item: (item[1] is not two.winner, item[1].macs)):
        cons, reward = violations(settings.budgets, c.metrics), settings.goal.score(c)
        usage = {bb.metric: bb.usage(c.metrics[bb.metric]) for bb in settings.budgets}
        attrs = {"macs": c.macs, "params": c.params, "accuracy": c.accuracy, "accuracy_method": c.accuracy_method,
                 "candidate": {**c.as_dict(), "feasible": ok, "value": reward, "usage": usage}}
        if c.latency_ms is not None:
            attrs["latency_ms"] = c.latency_ms
        if two.coefficients is not None:
            attrs.update(zip(("alpha", "beta", "gamma"), two.coefficients))
        if "phi" in params:
            params = {**params, "phi": min(max(params["phi"], span[0]), span[1])}
        params = {**params, **variants.params(c)}
        frozen.append(optuna.trial.create_trial(
            params=params, distributions={k: dist[k] for k in params}, value=reward, user_attrs=attrs,
            constraints={bb.metric: v for bb, v in zip(settings.budgets, cons)}))
        records.append(TrialRecord(len(records), c, ok, reward, params))
    numbers = add_companion_trials(store, phi_name, frozen)  # created once, shared by workers and reruns
    return [replace(r, number=n, study=phi_name) for r, n in zip(records, numbers)]
