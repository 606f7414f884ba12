"""Optuna studies of a search: opening a storage from a URL, creating or continuing a study with
the same settings, the sampler, and what each trial records (and is read back from on resume)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from scalelab.errors import ScalelabError
from scalelab.scaling.budget import Budget
from scalelab.scaling.candidates import Candidate

SAMPLERS = ("tpe", "random", "nsga2", "gp")


@dataclass(frozen=True)
class TrialRecord:
    number: int
    candidate: Candidate
    feasible: bool
    value: float  # the reward, or the accuracy in Pareto mode
    params: dict = field(default_factory=dict)  # the sampled parameters (d, w, r or alpha, beta, gamma)

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "feasible": self.feasible, "value": self.value,
                "sampled": self.params, **self.candidate.as_dict()}


def open_storage(url: Optional[str]):
    """An Optuna storage from a URL; 'memory' for a study that is not kept. A URL Optuna cannot open
    is a ScalelabError naming it."""
    import optuna

    if url in (None, "", "memory", ":memory:"):
        return optuna.storages.InMemoryStorage()
    try:
        # No heartbeat thread: a trial of a killed run stays RUNNING in the storage, is never counted
        # as finished, and the resumed run simply runs another in its place.
        storage = optuna.storages.RDBStorage(url)
    except Exception as exc:  # sqlalchemy raises many kinds for a bad URL, a missing driver, no file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScalelabError(
            f"storage '{url}': cannot open it as an Optuna storage ({reason}); give a database URL "
            f"such as sqlite:///studies.db or postgresql://user@host/db"
        ) from None
    if url.startswith("sqlite"):
        _fast_sqlite(storage.engine)
    return storage


def _fast_sqlite(engine) -> None:
    """Write-ahead log with normal sync: a trial's attribute writes stop waiting on the disk one by
    one (several times faster), and a crashed process still leaves a consistent file."""
    from sqlalchemy import event

    def pragmas(connection, _record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener reconnect with it


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


def open_study(storage, name: str, directions: list[str], fingerprint: dict, sampler_factory: Callable[[int], Any]):
    """Create the study, or continue the stored one of that name if it was made with the same
    settings. The sampler is seeded past the trials already there, so a resumed run does not
    propose the same points again."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True)
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", fingerprint)
    elif stored != fingerprint:
        differs = sorted(k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k))
        raise ScalelabError(
            f"study '{name}' already exists in this storage with other settings ({', '.join(differs)}: "
            f"{', '.join(f'{stored.get(k)} vs {fingerprint.get(k)}' for k in differs)}); use another --study "
            f"name or the same settings to continue it"
        )
    # the median pruner stops trials whose per-epoch accuracy (the train method) trails the others
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler_factory(len(study.trials)), pruner=pruner)


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
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))
