"""Batched writes of a study's trials to a SQLite file.

Optuna's RDB storage writes each parameter and attribute of a trial in its own round trip and commits
several times per trial: with SQLite that is most of a search's time (about a dozen writes per trial).
For a SQLite URL the trials therefore run in an in-memory copy of the study (which starts with the
stored trials, so the sampler sees them) and are written to the file every ``FLUSH_SECONDS`` and on
leaving, also on Ctrl-C or an error, in one transaction per flush. A killed process loses at most
the last few seconds of trials; a resumed run finds the rest.

Trade-off: another process sharing the same SQLite study sees a run's trials only at its flushes,
and its sampler does not see theirs until the next run. SQLite serialises writers anyway; a server
database (PostgreSQL, MySQL), the storage for many workers, is written trial by trial, unbatched.

The transaction uses Optuna's table models (``optuna.storages._rdb.models``). Should they change
shape, the flush falls back to ``Study.add_trials`` (Optuna's public API, one transaction per trial);
either way a flush writes all of its trials or none.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

#: how often the in-memory trials are written to the file while a study runs
FLUSH_SECONDS = 2.0


def batches(url: Optional[str]) -> bool:
    """Whether a study at this storage URL runs batched (a local SQLite file)."""
    return isinstance(url, str) and url.startswith("sqlite")


class BatchedStudy:
    """``with BatchedStudy(study, storage) as working: working.optimize(..., callbacks=[batched.flush_callback])``"""

    def __init__(self, study, storage):
        self.study, self.storage = study, storage
        self.copy = None
        self.written = 0  # trials of the copy already in the file (or there from the start)
        self.last = time.monotonic()

    def __enter__(self):
        import optuna

        self.copy = optuna.create_study(directions=self.study.directions, sampler=self.study.sampler,
                                        pruner=self.study.pruner)
        done = [t for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()]
        self.copy.add_trials(done)
        self.written = len(done)
        return self.copy

    def flush_callback(self, study, trial) -> None:
        if time.monotonic() - self.last >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        trials = self.copy.get_trials(deepcopy=False)[self.written:]
        fresh = []
        for t in trials:  # in order, up to the first still running
            if not t.state.is_finished():
                break
            fresh.append(t)
        if fresh:
            write_trials(self.storage, self.study, fresh)
            self.written += len(fresh)
        self.last = time.monotonic()

    def __exit__(self, *exc) -> None:
        self.flush()


def write_trials(storage, study, trials: list) -> None:
    """Append finished trials to a stored study in one transaction (an in-memory storage: add them)."""
    if not hasattr(storage, "scoped_session"):
        study.add_trials(trials)
        return
    try:
        _write_in_one_transaction(storage, study._study_id, trials)  # noqa: SLF001  # Optuna's Study names its id only privately
    except ImportError:  # Optuna's table models moved: its public API, one transaction per trial
        study.add_trials(trials)


def _write_in_one_transaction(storage, study_id: int, trials: list) -> None:
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import func

    def attrs(model, items: dict) -> list:
        return [model(key=k, value_json=json.dumps(v)) for k, v in items.items()]

    with _create_scoped_session(storage.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)  # numbers stay unique
        start = session.query(func.count(models.TrialModel.trial_id)).filter(
            models.TrialModel.study_id == study_id).scalar()
        for i, t in enumerate(trials):
            row = models.TrialModel(study_id=study_id, number=start + i, state=t.state,
                                    datetime_start=t.datetime_start, datetime_complete=t.datetime_complete)
            row.params = [models.TrialParamModel(param_name=k, param_value=t.distributions[k].to_internal_repr(v),
                                                 distribution_json=distribution_to_json(t.distributions[k]))
                          for k, v in t.params.items()]
            row.values = [_value(models.TrialValueModel, j, v) for j, v in enumerate(t.values or [])]
            row.user_attributes = attrs(models.TrialUserAttributeModel, t.user_attrs)
            row.system_attributes = attrs(models.TrialSystemAttributeModel, t.system_attrs)
            row.intermediate_values = [_intermediate(models.TrialIntermediateValueModel, step, v)
                                       for step, v in t.intermediate_values.items()]
            session.add(row)


def _value(model, objective: int, value: float) -> Any:
    stored, kind = model.value_to_stored_repr(value)
    return model(objective=objective, value=stored, value_type=kind)


def _intermediate(model, step: int, value: float) -> Any:
    stored, kind = model.intermediate_value_to_stored_repr(value)
    return model(step=step, intermediate_value=stored, intermediate_value_type=kind)
