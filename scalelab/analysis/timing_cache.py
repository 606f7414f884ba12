"""The measurement cache, and the cache of imported specs: SQLite files several scalelab processes
can share, in ``$XDG_CACHE_HOME/scalelab``.

One row per (layer tree, input shapes, conditions) key, with the timing, the competing load and the
spread it was measured with, and whether it was noisy. A noisy row is never served as a clean one:
``lookup`` returns clean rows only, and a clean measurement replaces a noisy one but never the other
way round. SQLite's own locking (WAL journal, a busy timeout) makes concurrent readers and writers
safe once the file is set up; the setup itself (switching a new file to WAL, creating the table) is
done by one process at a time under a file lock, as two processes switching the journal mode at
once make one of them fail at once, busy timeout or not. A cache that cannot be opened or written
only means measuring again.

``calibrate --from-table`` keeps what importing each table model gave (the spec's YAML, or the
refusal) in ``imports.sqlite`` beside it, keyed by (model, input size, scalelab version), set up and
shared the same way: a table of a thousand models is traced once per version, not once per run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Optional

_SCHEMA = """CREATE TABLE IF NOT EXISTS timings (
    key TEXT PRIMARY KEY,
    timing TEXT NOT NULL,
    noisy INTEGER NOT NULL,
    other_cpus REAL NOT NULL,
    spread REAL NOT NULL,
    measured_at REAL NOT NULL)"""
_IMPORTS = """CREATE TABLE IF NOT EXISTS imports (
    key TEXT PRIMARY KEY,
    spec TEXT,
    refusal TEXT,
    created_at REAL NOT NULL)"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scalelab"


def cache_file() -> Path:
    return cache_dir() / "latency.sqlite"


def import_cache_file() -> Path:
    return cache_dir() / "imports.sqlite"


def _connect(path: Path, table: str = "timings", schema: str = _SCHEMA) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30)
    try:
        if not _has_table(connection, table):
            from filelock import FileLock

            with FileLock(f"{path}.lock", timeout=30):
                if not _has_table(connection, table):  # another process may have set it up meanwhile
                    connection.execute("PRAGMA journal_mode=WAL")  # kept by the file from now on
                    connection.execute(schema)
    except BaseException:
        connection.close()
        raise
    return connection


def _has_table(connection: sqlite3.Connection, table: str = "timings") -> bool:
    found = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    return found.fetchone() is not None


def lookup(path: Path, keys: list[str]) -> dict[str, dict]:
    """The clean cached timings among ``keys`` (key -> timing fields)."""
    if not keys or not path.exists():
        return {}
    try:
        with closing(_connect(path)) as connection:
            marks = ",".join("?" * len(keys))
            rows = connection.execute(f"SELECT key, timing FROM timings WHERE noisy = 0 AND key IN ({marks})", keys)
            return {key: json.loads(timing) for key, timing in rows}
    except (sqlite3.Error, OSError, ValueError):
        return {}


def store(path: Path, entries: dict[str, dict], noisy: bool, other_cpus: float, spread: Optional[dict] = None) -> None:
    """Record timings (key -> timing fields); a noisy entry never replaces a clean one."""
    if not entries:
        return
    spread = spread or {}
    rows = [(key, json.dumps(t, sort_keys=True), int(noisy), other_cpus, spread.get(key, 0.0), time.time())
            for key, t in entries.items()]
    try:
        with closing(_connect(path)) as connection, connection:
            connection.executemany(
                "INSERT INTO timings VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "timing = excluded.timing, noisy = excluded.noisy, other_cpus = excluded.other_cpus, "
                "spread = excluded.spread, measured_at = excluded.measured_at WHERE excluded.noisy <= timings.noisy",
                rows)
    except (sqlite3.Error, OSError):
        pass  # an unwritable cache is not an error: the figures are still reported


def lookup_import(path: Path, key: str) -> Optional[tuple[Optional[str], Optional[str]]]:
    """(spec YAML, refusal) cached for ``key`` (exactly one of them is set), or None."""
    if not path.exists():
        return None
    try:
        with closing(_connect(path, "imports", _IMPORTS)) as connection:
            row = connection.execute("SELECT spec, refusal FROM imports WHERE key = ?", (key,)).fetchone()
            return (row[0], row[1]) if row else None
    except (sqlite3.Error, OSError):
        return None


def store_import(path: Path, key: str, spec: Optional[str], refusal: Optional[str]) -> None:
    """Record what importing ``key`` gave: its spec's YAML, or the refusal."""
    try:
        with closing(_connect(path, "imports", _IMPORTS)) as connection, connection:
            connection.execute("INSERT OR REPLACE INTO imports VALUES (?, ?, ?, ?)", (key, spec, refusal, time.time()))
    except (sqlite3.Error, OSError):
        pass  # an unwritable cache only means importing again
