"""Many workers on one study: ``--trials`` is a study-wide total, each worker samples with its own seed.

Exactly ``target`` trials are done however many workers share the study, by Optuna's own trial
numbering: the storage gives every trial a unique number under a lock, and a trial runs only if
fewer than ``target`` trials numbered below it are done or still live (running or queued). So at
most ``target`` get done; and no worker leaves while trials it waits on (other workers' running
ones, which may yet fail) are open, so at least ``target`` get done while one worker lives.

A trial is done when it completed, was pruned, or failed because its candidate cannot be built (a
result of the search, kept with its reason in the ``fail_reason`` attribute). A trial stopped by
Ctrl-C, or of a worker that died, is not done and is run again.

Dead workers, through Optuna's public API only: while a trial runs, its worker writes the time to the
trial's ``heartbeat`` user attribute every ``heartbeat`` seconds. A running trial silent for
``GRACE_FACTOR`` heartbeats (counted from its start when it never beat: a worker killed before its
first heartbeat), or whose worker is a process of this machine that is gone, is failed by the next
worker that looks (``Study.tell``: of several workers failing it at once, the storage lets one
succeed) and queued again by Optuna's ``RetryHeartbeatStaleTrialCallback``.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from scalelab.scaling.storages import GRACE_FACTOR, worker_name

#: how long a worker waits between looks at other workers' open trials (seconds)
POLL = 0.05
POLL_MAX = 1.0
#: the user attribute a running trial's worker writes the time (seconds since the epoch) to
HEARTBEAT = "heartbeat"


def _states():
    from optuna.trial import TrialState

    return TrialState


def is_done(trial) -> bool:
    s = _states()
    failed = "failed" in trial.user_attrs or "fail_reason" in trial.user_attrs  # a candidate that cannot be built
    return trial.state in (s.COMPLETE, s.PRUNED) or (trial.state == s.FAIL and failed)


def is_live(trial) -> bool:
    s = _states()
    return is_done(trial) or trial.state in (s.RUNNING, s.WAITING)


def count_done(study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if is_done(t))


class _Surplus(Exception):
    """The study already had its trials in hand when this one was claimed."""


class Quota:
    """Wraps the objective and stops the study once its ``target`` trials are done or in hand."""

    def __init__(self, study, target: int, catch: tuple[type[BaseException], ...]):
        self.study, self.target, self.catch = study, target, catch
        self.heartbeat = heartbeat_of(study)
        self.full = False  # the quota (not a caller) stopped the study
        self.ran = 0  # trials this worker finished in the current optimize call

    def counts(self) -> tuple[int, int]:
        """(done, running): done trials, and trials running now (in any worker), once the trials of
        dead workers are failed and queued again."""
        trials = self.study.get_trials(deepcopy=False)
        if fail_dead_trials(self.study, trials, self.heartbeat):
            trials = self.study.get_trials(deepcopy=False)
        running = _states().RUNNING
        return sum(1 for t in trials if is_done(t)), sum(1 for t in trials if t.state == running)

    def objective(self, objective: Callable) -> Callable:
        def counted(trial):
            ahead = sum(1 for t in self.study.get_trials(deepcopy=False) if t.number < trial.number and is_live(t))
            if ahead >= self.target:
                trial.set_user_attr("not_run", f"the study already had its {self.target} trials in hand")
                raise _Surplus
            host, pid = worker_name().rsplit(":", 1)
            trial.set_user_attr("worker", {"host": host, "pid": int(pid), "sampler_seed": _seed_of(self.study)})
            try:
                with beating(trial, self.heartbeat):
                    return objective(trial)
            except self.catch as exc:
                trial.set_user_attr("fail_reason", str(exc)[:1000])
                raise

        return counted

    def callback(self, study, trial) -> None:
        self.ran += 1
        done, running = self.counts()
        if done + running >= self.target:
            self.full = True
            study.stop()


def _seed_of(study) -> Any:
    return getattr(study.sampler, "seed", None)


def heartbeat_of(study) -> int:
    """Seconds between a running trial's heartbeats, 0 for none: carried by the worker's sampler
    (``worker_sampler``), as an Optuna study names its storage only privately."""
    return getattr(study.sampler, "heartbeat", 0)


@contextmanager
def beating(trial, seconds: int) -> Iterator[None]:
    """Write the time to the trial's ``heartbeat`` attribute every ``seconds`` while the block runs
    (nothing for 0, and nothing for a trial shorter than one interval: its start says it is alive)."""
    if seconds <= 0:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(seconds):
            try:
                trial.set_user_attr(HEARTBEAT, time.time())
            except Exception:  # taken for dead meanwhile, or the storage is gone: the trial is run again
                return

    thread = threading.Thread(target=beat, name="scalelab-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fail_dead_trials(study, trials: Sequence, heartbeat: int) -> int:
    """Fail the running trials of dead workers (``_is_dead``) and queue each again; returns how many
    this worker failed. A trial two workers find dead at once is failed and queued by one: the
    storage refuses the second ``tell`` (the trial is finished by then)."""
    if heartbeat <= 0:
        return 0
    import optuna

    now, grace = time.time(), GRACE_FACTOR * heartbeat
    failed = 0
    for trial in trials:
        if trial.state != _states().RUNNING or not _is_dead(trial, now, grace):
            continue
        try:
            study.tell(trial.number, state=_states().FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it between our read and our write
        except ValueError as exc:  # "Cannot tell a FAIL trial": it finished since it was read
            if "Cannot tell a" not in str(exc):
                raise
            continue
        _queue_again(study, trial)
        failed += 1
    return failed


def _is_dead(trial, now: float, grace: float) -> bool:
    """Silent for longer than ``grace`` seconds since its last heartbeat (or its start, for a worker
    killed before its first), or its worker is a process of this machine that is gone."""
    last = trial.user_attrs.get(HEARTBEAT, trial.datetime_start.timestamp())
    return now - last > grace or _gone_here(trial.user_attrs.get("worker"))


def _gone_here(worker: object) -> bool:
    """True for a worker of this machine whose process is gone (a pid reused since reads as alive)."""
    if not isinstance(worker, dict) or worker.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(worker["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, KeyError, TypeError, OverflowError):
        return False
    return False


def _queue_again(study, trial) -> None:
    """Optuna's retry callback (at most 3 times per trial) queues a copy with the dead trial's
    attributes: not the dead worker's name and heartbeat, or the copy would be taken for dead again
    once a live worker runs it."""
    import optuna

    dead = copy.deepcopy(trial)
    for key in ("worker", HEARTBEAT):
        dead.user_attrs.pop(key, None)
    with warnings.catch_warnings():  # "experimental" in Optuna since 2.8: say it once, here
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)(study, dead)


def run_trials(study, objective: Callable, target: int, *, catch: tuple[type[Exception], ...] = (),
               callbacks: Sequence[Callable] = (), progress: bool = False,
               stop_requested: Callable[[], bool] = lambda: False) -> None:
    """Run trials of ``study`` until it holds ``target`` done trials (counting every worker's), or
    until a caller stops it (a callback's ``study.stop()``, or ``stop_requested()``)."""
    import optuna

    quota = Quota(study, target, catch)
    counted = quota.objective(objective)
    wait = POLL
    while not stop_requested():
        done, running = quota.counts()  # dead workers' trials: failed and queued again
        if done >= target:
            return
        if done + running >= target:  # other workers run the rest; wait, as theirs may yet fail
            time.sleep(wait)
            wait = min(POLL_MAX, wait * 2)
            continue
        wait = POLL
        quota.full, quota.ran = False, 0
        try:
            study.optimize(counted, n_trials=target - done, catch=(*catch, _Surplus), show_progress_bar=progress,
                           callbacks=[quota.callback, *callbacks])
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
            # another worker took this trial for dead (no heartbeat within the grace period, e.g. on an
            # overloaded machine) and queued it again: Optuna refuses to record it ("Cannot tell a FAIL
            # trial"); the queued copy is run instead
            if isinstance(exc, ValueError) and "Cannot tell a" not in str(exc):
                raise
            continue
        if not quota.full and quota.ran < target - done:
            return  # stopped by a caller (a callback's study.stop())


def worker_seed(study_seed: int, first_trial: int) -> int:
    """A worker's sampler seed: the study seed plus the number of its first trial. Trial numbers are
    unique, so workers never share a seed, and one worker on a fresh study uses the study seed."""
    return (study_seed + first_trial) % 2**32


def worker_sampler(make: Callable[[int], Any], study_seed: int, heartbeat: int = 0):
    """A sampler that creates the real one (``make(seed)``) at this worker's first trial, seeded by
    ``worker_seed``; the seed is recorded on each trial (``worker`` attribute). It also carries the
    worker's ``heartbeat`` (seconds, 0 for none; ``heartbeat_of``)."""
    from optuna.samplers import BaseSampler

    class WorkerSampler(BaseSampler):
        def __init__(self):
            self.inner, self.seed, self.heartbeat = None, None, heartbeat

        def _sampler(self, trial):
            if self.inner is None:
                self.seed = worker_seed(study_seed, trial.number)
                self.inner = make(self.seed)
            return self.inner

        def before_trial(self, study, trial):
            self._sampler(trial).before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._sampler(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._sampler(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._sampler(trial).sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            if self.inner is not None:  # else a dead worker's trial this worker failed before its own first
                self.inner.after_trial(study, trial, state, values)

        def reseed_rng(self):
            if self.inner is not None:
                self.inner.reseed_rng()

    return WorkerSampler()
