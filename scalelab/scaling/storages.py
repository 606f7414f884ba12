"""Opening an Optuna storage that several worker processes (on one machine or many) share safely.

- Workers that start together on a fresh database race to create its tables: the loser of each race
  sees "table ... already exists" or a unique violation, and simply tries again (the schema is
  created once, by whoever wins).
- SQLite: write-ahead log, a long busy timeout, and ``BEGIN IMMEDIATE`` transactions, so writers
  queue for the lock instead of failing with "database is locked" (a deferred transaction that reads
  first and writes later cannot wait: SQLite refuses it at once when another process wrote meanwhile).
- Heartbeats (Optuna's ``heartbeat_interval``/``grace_period``): a running trial whose worker stops
  beating is failed by the next worker that looks, and ``RetryHeartbeatStaleTrialCallback`` queues it
  again, so a killed worker loses nothing and leaves nothing RUNNING.
"""

from __future__ import annotations

import os
import random
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Iterator, Optional

from scalelab.errors import ScalelabError

#: seconds between a running trial's heartbeats; a trial silent for GRACE_FACTOR times as long is
#: taken as the trial of a dead worker, failed and queued again
DEFAULT_HEARTBEAT = 5
GRACE_FACTOR = 3
#: how long a SQLite writer waits for the lock before giving up (seconds)
SQLITE_BUSY_TIMEOUT = 120
#: messages of the errors two workers creating the same tables at once can get
_RACE_MARKERS = ("already exists", "duplicate key", "unique constraint", "uniqueviolation", "database is locked",
                 "deadlock", "could not serialize")
_OPEN_ATTEMPTS = 30


def is_memory(url: Optional[str]) -> bool:
    return url in (None, "", "memory", ":memory:")


def check_url(url: str) -> None:
    """Refuse an in-memory SQLite URL (``sqlite://``, ``sqlite:///:memory:``): each connection would get
    its own empty database, so the study could be neither shared nor resumed; 'memory' is the storage
    that keeps nothing."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower().split("+")[0] != "sqlite":
        return
    path, _, query = rest.partition("?")
    database = path[1:] if path.startswith("/") else path
    if database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in query:
        raise ScalelabError(f"storage '{url}': an in-memory SQLite database cannot be shared or resumed; give a "
                            f"file (sqlite:///studies.db), or --storage memory for a study that is not kept")


def open_storage(url: Optional[str], heartbeat: int = DEFAULT_HEARTBEAT):
    """An Optuna storage from a URL; 'memory' for a study that is not kept. A URL Optuna cannot open
    is a ScalelabError naming it. ``heartbeat`` (seconds, 0 for none) applies to database storages."""
    import optuna

    if url is None or is_memory(url):
        return optuna.storages.InMemoryStorage()
    check_url(url)
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            return _open_rdb(url, heartbeat)
        except Exception as exc:  # sqlalchemy raises many kinds for a bad URL, a missing driver, no file
            text = str(exc).strip()
            if attempt + 1 < _OPEN_ATTEMPTS and any(m in text.lower() for m in _RACE_MARKERS):
                time.sleep(random.uniform(0.05, 0.3) * (1 + attempt / 5))  # another worker is creating the schema
                continue
            reason = text.splitlines()[0][:200] if text else type(exc).__name__
            raise ScalelabError(
                f"storage '{url}': cannot open it as an Optuna storage ({reason}); give a database URL "
                f"such as sqlite:///studies.db or postgresql://user@host/db (PostgreSQL needs the driver: "
                f"pip install 'scalelab[postgres]')"
            ) from None
    raise AssertionError("unreachable")


def _open_rdb(url: str, heartbeat: int):
    import warnings

    import optuna

    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9: say it once, here
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _open_rdb_quietly(url, heartbeat)


def _open_rdb_quietly(url: str, heartbeat: int):
    import optuna

    sqlite = url.startswith("sqlite")
    kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}} if sqlite else {"pool_pre_ping": True}
    beats = {}
    if heartbeat > 0:
        beats = {"heartbeat_interval": heartbeat, "grace_period": GRACE_FACTOR * heartbeat,
                 "heartbeat_stale_trial_callback": _retry_without_worker(
                     optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))}
    storage = SharedStorage(url, engine_kwargs=kwargs, **beats)
    if sqlite:
        _shared_sqlite(storage.engine)
    return storage


def _retry_without_worker(retry):
    """Optuna's retry callback copies the dead trial's attributes into the queued copy: the copy must
    not carry the dead worker's name, or it would be taken for dead again once a live worker runs it."""

    def callback(study, trial) -> None:
        trial.user_attrs.pop("worker", None)  # ``trial`` is the callback's own deep copy
        retry(study, trial)

    return callback


def _shared_sqlite(engine) -> None:
    """WAL (readers never block the writer; a killed process leaves a consistent file), normal sync,
    and every transaction taking the write lock up front (SQLAlchemy's documented pysqlite recipe)."""
    from sqlalchemy import event

    def on_connect(connection, _record):
        connection.isolation_level = None  # pysqlite emits no BEGIN of its own; on_begin does
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    engine.dispose()  # connections opened before the listeners reconnect with them


@contextmanager
def exclusive(storage, key: str) -> Iterator[None]:
    """Hold a lock named ``key`` across the processes that share ``storage``, for a check-then-write
    Optuna has no transaction for: a PostgreSQL advisory lock, a lock file beside a SQLite database
    (never the database file itself: closing any handle on it would drop the POSIX locks SQLite holds
    there, see sqlite.org/howtocorrupt.html 2.2); none for other storages."""
    import zlib

    url = str(getattr(storage, "engine", None) and storage.engine.url or "")
    if url.startswith("postgresql"):
        import sqlalchemy

        number = zlib.crc32(key.encode()) - 2**31
        with storage.engine.connect() as db:
            db.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": number})
            try:
                yield
            finally:
                db.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": number})
                db.commit()
        return
    path = storage.engine.url.database if url.startswith("sqlite") else None
    if not path or path == ":memory:":
        yield
        return
    from filelock import FileLock

    with FileLock(f"{path}.lock"):
        yield


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(worker: object) -> bool:
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


def _storage_class():
    import optuna
    import sqlalchemy

    class _SharedStorage(optuna.storages.RDBStorage):
        """Optuna's RDBStorage; its stale-trial check also catches the running trials Optuna's misses:
        a worker killed between creating a trial and its first heartbeat leaves a trial with no
        heartbeat at all (failed once it is older than the grace period), and a worker of this
        machine whose process is gone is known dead at once."""

        _looked = -float("inf")

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            # Optuna looks before every trial; once per heartbeat interval is enough, as a trial is
            # stale only after several intervals of silence (two fewer queries per trial)
            if time.monotonic() - self._looked < (self.heartbeat_interval or 0):
                return []
            self._looked = time.monotonic()
            stale = list(super()._get_stale_trial_ids(study_id))
            running = [t for t in self.get_all_trials(study_id, deepcopy=False,
                                                      states=(optuna.trial.TrialState.RUNNING,))
                       if t._trial_id not in stale]
            if not running:
                return stale
            with self.engine.connect() as db:
                query = sqlalchemy.text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
                    sqlalchemy.bindparam("ids", expanding=True))
                beating = {row[0] for row in db.execute(query, {"ids": [t._trial_id for t in running]})}
            cutoff = datetime.now() - timedelta(seconds=self.grace_period or 2 * (self.heartbeat_interval or 0))
            for t in running:
                silent = t._trial_id not in beating and t.datetime_start is not None and t.datetime_start < cutoff
                if silent or _dead_here(t.user_attrs.get("worker")):
                    stale.append(t._trial_id)
            return stale

    return _SharedStorage


def SharedStorage(url: str, **kwargs):  # noqa: N802 (a class made on first use: optuna is imported late)
    global _SHARED
    if _SHARED is None:
        _SHARED = _storage_class()
    return _SHARED(url, **kwargs)


_SHARED = None
