"""Optuna studies of a search: creating or continuing a study with the same settings (refusing
other ones), the sampler, the shared companion study, and what each trial records (and is read back
from on resume). Storages are opened by ``scaling.storages``; many workers are ``scaling.workers``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from scalelab.errors import ScalelabError
from scalelab.scaling.budget import Budget
from scalelab.scaling.candidates import Candidate
from scalelab.scaling.objectives import Direction
from scalelab.scaling.storages import exclusive, open_storage  # noqa: F401  (open_storage re-exported)
from scalelab.scaling.workers import count_done, worker_sampler

SAMPLERS = ("tpe", "random", "nsga2", "gp")


@dataclass(frozen=True)
class TrialRecord:
    number: int
    candidate: Candidate
    feasible: bool
    value: float  # the reward, or the accuracy in Pareto mode
    params: dict = field(default_factory=dict)  # the sampled parameters (d, w, r or alpha, beta, gamma)
    study: str = ""  # the companion study holding it as trial ``number`` ('': the search's own study)

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, **({"study": self.study} if self.study else {}), "feasible": self.feasible,
                "value": self.value, "sampled": self.params, **self.candidate.as_dict()}


def make_sampler(name: str, seed: int):
    """Samplers read each trial's constraints (``Trial.set_constraint``) to tell feasible from not."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=10)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ScalelabError(f"sampler must be one of {', '.join(SAMPLERS)}, got '{name}'")


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed trials stay in the study, marked FAIL
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


#: the option that sets each fingerprint entry, for the message that refuses a mismatch
OPTIONS = {
    "base": "SPEC", "method": "--method", "objective": "--objective", "constraint": "--constraint",
    "soft_w": "--reward-exponent", "budgets": "--budget", "space": "--min-/--max-depth, width, resolution",
    "accuracy": "--accuracy", "device": "--device", "dtype": "--dtype", "batch": "--batch", "divisor": "--divisor",
    "resolution_multiple": "--resolution-multiple", "product": "--product-tolerance",
    "extrapolation": "--extrapolation", "seed": "--seed", "sampler": "--sampler", "variants": "--ensembles/--crops",
}


def open_study(storage, name: str, directions: Sequence[Direction], fingerprint: dict, sampler_factory: Callable[[int], Any],
               seed: int = 0):
    """Create the study, or continue the stored one of that name if it was made with the same
    settings (several workers may do this at once: the first creates it, the others load it). Each
    worker's sampler (``sampler_factory(seed)``) is seeded from ``seed`` and its first trial's number
    (``workers.worker_seed``), so workers, and a resumed run, do not propose the same points again;
    it carries the storage's heartbeat interval to ``workers.run_trials``."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", fingerprint)
    else:
        check_settings(name, stored, fingerprint)
    # the median pruner stops trials whose per-epoch accuracy (the train method) trails the others
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    sampler = worker_sampler(sampler_factory, seed, heartbeat=getattr(storage, "heartbeat", 0))
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def check_settings(name: str, stored: dict, fingerprint: dict) -> None:
    """Refuse to continue a study made with settings that change its results. Settings a study of an
    earlier scalelab did not record are not compared."""
    differs = [k for k in fingerprint if k in stored and stored[k] != fingerprint[k]]
    if not differs:
        return
    what = "; ".join(f"{k} ({OPTIONS.get(k, k)}): {_short(stored[k])} there, {_short(fingerprint[k])} now" for k in differs)
    raise ScalelabError(
        f"study '{name}' already exists in this storage, made with other settings: {what}. Its trials were not "
        f"made with this run's settings, so they are not mixed: give a new --study name to start a study with "
        f"these settings, or run with the stored settings to continue it"
    )


def _short(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def add_companion_trials(storage, name: str, trials: Sequence[Any]) -> list[int]:
    """Add frozen trials to the companion study ``name``, created once and then shared: by several
    workers, and by reruns that reach other coefficients. A trial already there (the same alpha,
    beta, gamma and parameters) is not added again. Returns each trial's number in that study, the
    number a person finds it under (optuna-dashboard)."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    key = lambda t: (tuple(round(float(t.user_attrs.get(c, 0.0)), 9) for c in ("alpha", "beta", "gamma")),  # noqa: E731
                     tuple(sorted((k, round(float(v), 6)) for k, v in t.params.items())))
    with exclusive(storage, name):  # workers finishing together: one adds, the others find them there
        stored = study.get_trials(deepcopy=False)
        have = {key(t): t.number for t in stored}
        after = len(stored)  # a study numbers its trials 0, 1, ... in the order they are added
        for trial in trials:
            if key(trial) not in have:
                study.add_trial(trial)
                have[key(trial)] = after
                after += 1
    return [have[key(t)] for t in trials]


def record_trial(trial, c: Candidate, budgets: Sequence[Budget], ok: bool, value: float) -> None:
    """The figures a person browses in optuna-dashboard as separate attributes; the whole candidate
    (what scalelab reads back on resume) as one, to keep the writes per trial few."""
    trial.set_user_attr("macs", c.macs)
    trial.set_user_attr("params", c.params)
    if c.latency_ms is not None:
        trial.set_user_attr("latency_ms", c.latency_ms)
    trial.set_user_attr("accuracy", c.accuracy)
    trial.set_user_attr("accuracy_method", c.accuracy_method)
    usage = {b.metric: b.usage(c.metrics[b.metric]) for b in budgets}
    trial.set_user_attr("candidate", {**c.as_dict(), "feasible": ok, "value": value, "usage": usage})


def candidate_of(attrs: dict) -> Candidate:
    return Candidate.from_dict(attrs)


def read_records(study) -> list[TrialRecord]:
    import optuna

    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = t.user_attrs.get("candidate")
        if attrs is None:
            continue
        out.append(TrialRecord(t.number, candidate_of(attrs), bool(attrs["feasible"]), float(attrs["value"]),
                               dict(t.params)))
    return out


def count_finished(study) -> int:
    """Trials done: complete, pruned, or failed because their candidate cannot be built."""
    return count_done(study)
