"""Many workers on one study, on PostgreSQL and on SQLite: separate processes started together on a
fresh database, one SIGKILLed mid-run; the study ends with exactly the requested complete trials,
none RUNNING, no repeated points, and the two-step method's companion study written once.

PostgreSQL: SCALELAB_TEST_POSTGRES_URL names a server where the tests may create databases (`.ci/run`
starts one). Without it these tests skip, except under CI=true, where they fail."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
STATES = optuna.trial.TrialState


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test."""
    url = os.environ.get("SCALELAB_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but SCALELAB_TEST_POSTGRES_URL is not set: the PostgreSQL tests must run in CI")
        pytest.skip("SCALELAB_TEST_POSTGRES_URL is not set (no PostgreSQL server to test against)")
    import psycopg

    name = f"scalelab_{uuid.uuid4().hex[:12]}"
    admin = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("postgres_url")


def scale_args(storage: str, study: str, trials: int, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "scalelab", "scale", "--budget", "400MFLOPs", "--trials", str(trials),
            "--storage", storage, "--study", study, "--report-dir", str(out), "--no-charts", "--format", "json",
            "--extrapolation", "allow", "--heartbeat", "2", *extra]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=ENV)


def complete_count(storage: str, study: str) -> int:
    try:
        return len(optuna.load_study(study_name=study, storage=storage).get_trials(states=(STATES.COMPLETE,)))
    except Exception:  # not created yet
        return 0


def started_workers(storage: str, study: str) -> int:
    """How many processes have started a trial of the study."""
    try:
        trials = optuna.load_study(study_name=study, storage=storage).trials
    except Exception:  # not created yet
        return 0
    return len({t.user_attrs["worker"]["pid"] for t in trials if "worker" in t.user_attrs})


def wait_for(storage: str, study: str, at_least: int, procs, timeout: float = 120, workers: int = 0) -> None:
    """Until the study holds ``at_least`` complete trials and ``workers`` processes have started one."""
    deadline = time.monotonic() + timeout
    while complete_count(storage, study) < at_least or started_workers(storage, study) < workers:
        assert time.monotonic() < deadline, "the workers made no progress"
        assert all(p.poll() is None for p in procs), [p.communicate()[1].decode()[-2000:] for p in procs]
        time.sleep(0.05)


def check_study(storage: str, study: str, trials: int) -> list:
    s = optuna.load_study(study_name=study, storage=storage)
    states = collections.Counter(t.state for t in s.trials)
    assert states[STATES.COMPLETE] == trials, states
    assert states[STATES.RUNNING] == 0, states
    complete = s.get_trials(states=(STATES.COMPLETE,))
    points = {tuple(sorted(t.params.items())) for t in complete}
    assert len(points) == trials  # no worker repeated another's point
    for t in s.get_trials(states=(STATES.FAIL,)):  # a killed worker's trial, or one claimed past the total
        assert "not_run" in t.user_attrs or any("failed_trial" in c.system_attrs for c in s.trials), t
    return complete


@pytest.mark.parametrize("method", ["direct", "two-step"])
def test_four_workers_on_a_fresh_database_one_killed(storage, method, tmp_path):
    trials = 80
    procs = [start(scale_args(storage, "s", trials, tmp_path / f"r{i}", "--method", method), tmp_path)
             for i in range(4)]
    wait_for(storage, "s", 4, procs, workers=4)  # each of the three that live on then completes a trial
    victim = procs[1]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for proc in procs[:1] + procs[2:]:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0 and b"Traceback" not in err, err.decode()[-3000:]
        report = json.loads(out)
        assert report["trials_total"] == trials
    complete = check_study(storage, "s", trials)
    seeds = collections.defaultdict(set)
    for t in complete:
        seeds[t.user_attrs["worker"]["pid"]].add(t.user_attrs["worker"]["sampler_seed"])
    assert len(seeds) >= 3 and all(len(v) == 1 for v in seeds.values())
    assert len({next(iter(v)) for v in seeds.values()}) == len(seeds)  # each worker its own sampler seed
    if method == "two-step":
        phi = optuna.load_study(study_name="s-phi", storage=storage)
        keys = [(t.user_attrs["alpha"], t.user_attrs["beta"], t.user_attrs["gamma"], tuple(sorted(t.params.items())))
                for t in phi.trials]
        assert keys and len(keys) == len(set(keys))  # written once, though three workers reported


def test_a_dead_workers_trials_are_run_again(storage, tmp_path):
    """Two RUNNING trials of a worker on another machine that died: one that beat once, one killed
    before its first heartbeat. Once silent for the grace period (3 x --heartbeat 2 s) both are failed, queued
    again and run; the study ends with the requested trials and nothing RUNNING."""
    from scalelab.scaling.storages import open_storage
    from scalelab.scaling.workers import HEARTBEAT

    store = open_storage(storage, heartbeat=1)
    study = optuna.create_study(storage=store, study_name="d", direction="maximize")
    orphans = [study.ask() for _ in range(2)]
    for trial in orphans:
        trial.set_user_attr("worker", {"host": "elsewhere", "pid": 1, "sampler_seed": 0})
    started = time.monotonic()
    orphans[0].set_user_attr(HEARTBEAT, time.time())
    store.engine.dispose()
    res = subprocess.run(scale_args(storage, "d", 12, tmp_path / "r", "--method", "direct"), capture_output=True,
                         cwd=tmp_path, env=ENV, timeout=240)
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    assert time.monotonic() - started >= 6  # not before the grace period
    check_study(storage, "d", 12)
    study = optuna.load_study(study_name="d", storage=storage)
    retried = {t.system_attrs.get("failed_trial") for t in study.trials}
    assert {0, 1} <= retried  # both orphans were queued again (RetryHeartbeatStaleTrialCallback)
    assert [t.state for t in study.trials[:2]] == [STATES.FAIL, STATES.FAIL]


def test_two_workers_that_find_one_dead_trial_queue_it_once(storage):
    """Both read the trial as RUNNING before either fails it: the storage lets one ``tell`` through."""
    from scalelab.scaling.storages import open_storage
    from scalelab.scaling.workers import fail_dead_trials

    store = open_storage(storage, heartbeat=1)
    first = optuna.create_study(storage=store, study_name="d", direction="maximize")
    first.ask().set_user_attr("worker", {"host": "elsewhere", "pid": 1, "sampler_seed": 0})
    second = optuna.load_study(study_name="d", storage=store)
    seen = [s.get_trials(deepcopy=False) for s in (first, second)]
    time.sleep(3.2)  # past the grace period, 3 x 1 s
    assert [fail_dead_trials(s, trials, heartbeat=1) for s, trials in zip((first, second), seen)] == [1, 0]
    states = [t.state for t in optuna.load_study(study_name="d", storage=store).trials]
    assert states == [STATES.FAIL, STATES.WAITING]


def test_a_long_trial_beats():
    from scalelab.scaling.workers import HEARTBEAT, beating

    study = optuna.create_study()
    trial = study.ask()
    with beating(trial, 1):
        time.sleep(1.5)
    study.tell(trial, 1.0)
    assert time.time() - study.trials[0].user_attrs[HEARTBEAT] < 1.5


def test_local_workers_share_one_study_and_stop_together(tmp_path):
    """`--workers 3` on SQLite: three processes, one report; Ctrl-C stops them all."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    res = subprocess.run(scale_args(storage, "w", 45, tmp_path / "r", "--workers", "3"), capture_output=True,
                         cwd=tmp_path, env=ENV, timeout=240)
    assert res.returncode == 0, res.stderr.decode()[-3000:]
    assert json.loads(res.stdout)["trials_total"] == 45
    complete = check_study(storage, "w", 45)
    assert len({t.user_attrs["worker"]["pid"] for t in complete}) == 3
    assert sorted(p.name for p in (tmp_path / "r").iterdir() if p.suffix == ".json") == ["w.json"]

    proc = start(scale_args(storage, "w", 100000, tmp_path / "r", "--workers", "3"), tmp_path)
    wait_for(storage, "w", 60, [proc])
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 130 and "Traceback" not in err.decode(), err.decode()
    assert [line for line in lines if line.startswith("interrupted:")] == lines[-1:]
    study = optuna.load_study(study_name="w", storage=storage)
    workers = {t.user_attrs["worker"]["pid"] for t in study.trials if "worker" in t.user_attrs}
    time.sleep(1)
    for pid in workers:  # no worker left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not study.get_trials(states=(STATES.RUNNING,))


def test_workers_need_a_shared_storage(tmp_path):
    from cli_helpers import assert_refused, invoke

    res = invoke("scale", "--budget", "400MFLOPs", "--workers", "2", "--storage", "memory", "--report-dir", tmp_path / "r")
    assert_refused(res, "--workers needs a database storage", "'memory' is private to one process")
    assert not (tmp_path / "r").exists()


def helper_stand_in(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)


HELPER = """
import sys, time
from scalelab.cli.local_workers import wait_for_start
time.sleep({delay})
wait_for_start()
print("started", file=sys.stderr, flush=True)
print("this goes nowhere", flush=True)
"""


def test_local_workers_start_together():
    """The process that started the helpers waits until each has said it is ready (one taking 1.5 s,
    one exiting first), then closes their standard input: only then do they go on."""
    from scalelab.cli.local_workers import LocalWorkers

    crew = LocalWorkers(3)
    crew.procs = [helper_stand_in(HELPER.format(delay=1.5)), helper_stand_in(HELPER.format(delay=0)),
                  helper_stand_in("raise SystemExit(3)")]
    started = time.monotonic()
    crew.start_together(lambda: False)
    assert time.monotonic() - started >= 1.5
    outs = [proc.stderr.read().decode() for proc in crew.procs]
    assert [proc.wait(timeout=30) for proc in crew.procs] == [0, 0, 3]
    assert outs[:2] == ["started\n", "started\n"]
    assert crew.wait() == [f"note: worker process {crew.procs[2].pid} exited with code 3; "
                           f"the study's remaining trials were run by the other workers"]


def test_a_helper_waits_at_the_start_line_until_released():
    helper = helper_stand_in(HELPER.format(delay=0))
    assert helper.stdout.readline() == b"ready\n"
    time.sleep(0.5)
    assert helper.poll() is None  # still waiting
    helper.stdin.close()
    assert helper.wait(timeout=30) == 0 and helper.stdout.read() == b""  # later output is not sent here
    assert helper.stderr.read() == b"started\n"


def test_a_ctrl_c_at_the_start_line_lets_everyone_go():
    from scalelab.cli.local_workers import LocalWorkers

    crew = LocalWorkers(1)
    crew.procs = [helper_stand_in("import sys; sys.stdin.buffer.read()")]  # never says it is ready
    started = time.monotonic()
    crew.start_together(lambda: time.monotonic() - started > 0.3)  # a Ctrl-C after 0.3 s
    assert crew.procs[0].wait(timeout=30) == 0  # released: its standard input was closed
    assert time.monotonic() - started < 30
