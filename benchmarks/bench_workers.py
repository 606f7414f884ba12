"""Benchmark: trials per second of the analytic search (EfficientNet-B0, 400 MFLOPs, direct method,
scaling-law estimator) with 1, 2 and 4 workers, on SQLite and on PostgreSQL.

    python benchmarks/bench_workers.py --postgres postgresql://postgres@127.0.0.1:5432/postgres \\
        [--trials 200] [--output benchmarks/workers.md]

Each row is one `scalelab scale --workers N` run on a fresh database (a new SQLite file; a new
PostgreSQL database, created and dropped here). Trials per second are counted over the search itself,
from the first trial's start to the last trial's end as the storage recorded them, so process start-up
and the report are left out; the wall time of the whole command is given too. A last pair of rows runs
one worker in-process with and without heartbeats, the cost of the dead-worker check.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def search_rate(storage: str, study: str) -> tuple[int, float]:
    import optuna

    trials = optuna.load_study(study_name=study, storage=storage).get_trials(
        states=(optuna.trial.TrialState.COMPLETE,))
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return len(trials), len(trials) / (end - start).total_seconds()


def run_cli(storage: str, workers: int, trials: int, folder: Path) -> tuple[int, float, float]:
    args = [sys.executable, "-m", "scalelab", "scale", "--budget", "400MFLOPs", "--method", "direct",
            "--trials", str(trials), "--workers", str(workers), "--storage", storage, "--study", "bench",
            "--report-dir", str(folder / "r"), "--no-charts", "--format", "json", "--extrapolation", "allow"]
    t = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t
    done, rate = search_rate(storage, "bench")
    return done, rate, wall


def fresh_postgres(url: str):
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return f"{url.rpartition('/')[0]}/{name}", name


def drop_postgres(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def in_process(heartbeat: int, trials: int, folder: Path) -> float:
    from scalelab.scaling.budget import parse_budgets
    from scalelab.scaling.candidates import Evaluator
    from scalelab.scaling.search import SearchSettings, run_search
    from scalelab.spec import load_spec

    budgets = parse_budgets("400MFLOPs")
    settings = SearchSettings(tuple(budgets), method="direct", trials=trials, extrapolation="allow")
    storage = f"sqlite:///{folder / f'hb{heartbeat}.db'}"
    run_search(Evaluator(load_spec("efficientnet_b0"), budgets), settings, storage=storage, study_name="bench",
               heartbeat=heartbeat)
    return search_rate(storage, "bench")[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("SCALELAB_TEST_POSTGRES_URL"),
                        help="a PostgreSQL server where databases may be created")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "workers.md")
    parser.add_argument("--server", default="a local server", help="how the PostgreSQL server was run (for the report)")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for workers in (1, 2, 4):
            db = folder / f"w{workers}.db"
            done, rate, wall = run_cli(f"sqlite:///{db}", workers, args.trials, folder)
            rows.append(("SQLite", workers, done, rate, wall))
            print(rows[-1], flush=True)
        if args.postgres:
            for workers in (1, 2, 4):
                url, name = fresh_postgres(args.postgres)
                try:
                    done, rate, wall = run_cli(url, workers, args.trials, folder)
                finally:
                    drop_postgres(args.postgres, name)
                rows.append(("PostgreSQL", workers, done, rate, wall))
                print(rows[-1], flush=True)
        beats = {hb: in_process(hb, args.trials, folder) for hb in (0, 5)}
    load = os.getloadavg()[0]
    write(args, rows, beats, load)


def write(args, rows, beats, load) -> None:
    import optuna

    one = {storage: rate for storage, workers, _, rate, _ in rows if workers == 1}
    lines = [
        "# Workers benchmark", "",
        f"Trials per second of a {args.trials}-trial direct search of EfficientNet-B0 scalings under 400 MFLOPs "
        "(analytic costs, scaling-law accuracy), with `scalelab scale --workers N` on a fresh database; "
        "`benchmarks/bench_workers.py`.", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; Python {platform.python_version()}, "
        f"Optuna {optuna.__version__}; load average when done {load:.1f} (other processes share the cores: "
        "compare rows of one run, not runs).", "",
        "| storage | workers | complete trials | trials/s (search) | vs 1 worker | wall time of the command (s) |",
        "|---|---|---|---|---|---|",
    ]
    for storage, workers, done, rate, wall in rows:
        lines.append(f"| {storage} | {workers} | {done} | {rate:.1f} | x{rate / one[storage]:.2f} | {wall:.1f} |")
    lines += [
        "", "One worker in-process on SQLite, trials per second: "
        f"{beats[0]:.1f} without heartbeats, {beats[5]:.1f} with a 5 s heartbeat "
        f"(x{beats[5] / beats[0]:.2f}: a heartbeat user attribute written while a trial runs, the dead-trial check "
        f"on the trial list the quota reads).", "",
        "Reading: every row ends with exactly the requested complete trials (the total is study-wide). A trial "
        "of the analytic search takes milliseconds, so the storage and the cores bound the rate. SQLite lets one "
        "writer in at a time (workers queue for its lock), so extra workers on one SQLite file gain nothing and "
        "may lose to the lock; PostgreSQL takes writes concurrently, so workers gain until they outnumber the "
        f"cores ({os.cpu_count()} here): past that they only compete. On a machine already busy with other "
        "processes, a run with more processes also gets a larger share of the cores, so the speed-ups can "
        "overstate what extra workers give on an idle machine. "
        f"PostgreSQL: {args.server}.",
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
