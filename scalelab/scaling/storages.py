"""Opening an Optuna storage that several worker processes (on one machine or many) share safely.

- Workers that start together on a fresh database race to create its tables: the loser of each race
  sees "table ... already exists" or a unique violation, and simply tries again (the schema is
  created once, by whoever wins).
- SQLite: write-ahead log, a long busy timeout, and ``BEGIN IMMEDIATE`` transactions, so writers
  queue for the lock instead of failing with "database is locked" (a deferred transaction that reads
  first and writes later cannot wait: SQLite refuses it at once when another process wrote meanwhile).
- The storage carries its workers' heartbeat interval; ``scaling.workers`` beats and fails the trials
  of dead workers through Optuna's public trial API, so a killed worker loses nothing and leaves
  nothing RUNNING. Nothing here reaches into Optuna's private modules or its tables.
"""

from __future__ import annotations

import os
import random
import socket
import time
from contextlib import contextmanager
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
    is a ScalelabError naming it. ``heartbeat`` (seconds, 0 for none): how often the running trials of
    the workers on a database storage beat (kept on the storage as ``heartbeat``)."""
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
    sqlite = url.startswith("sqlite")
    kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}} if sqlite else {"pool_pre_ping": True}
    storage = SharedStorage(url, engine_kwargs=kwargs)
    storage.heartbeat = heartbeat
    if sqlite:
        _shared_sqlite(storage.engine)
    return storage


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


def _storage_class():
    import optuna

    class _SharedStorage(optuna.storages.RDBStorage):
        """Optuna's RDBStorage, and the heartbeat interval of the workers that use it (seconds, 0 for
        none), which ``studies.open_study`` hands to each worker's sampler."""

        heartbeat = 0

    return _SharedStorage


def SharedStorage(url: str, **kwargs):  # noqa: N802 (a class made on first use: optuna is imported late)
    global _SHARED
    if _SHARED is None:
        _SHARED = _storage_class()
    return _SHARED(url, **kwargs)


_SHARED = None
