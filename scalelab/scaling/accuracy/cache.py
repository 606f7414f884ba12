"""Results computed from the published table (the fitted law, the interval calibration), kept as
JSON beside it with the table's SHA-256: every process would otherwise refit them (seconds). A
cache whose digest differs from the table's is recomputed and rewritten where the package folder is
writable; ``tests/test_accuracy.py`` checks the shipped files against a fresh computation."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Callable


def published_digest() -> str:
    text = (resources.files("scalelab.scaling.accuracy") / "published.yaml").read_bytes()
    return hashlib.sha256(text).hexdigest()


def cache_path(name: str) -> Path:
    return Path(str(resources.files("scalelab.scaling.accuracy") / f"{name}.cache.json"))


def cached(name: str, compute: Callable[[], dict]) -> dict:
    """``compute()`` (a JSON-ready dict), or its stored result for the current published table."""
    path, digest = cache_path(name), published_digest()
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("published_sha256") == digest:
            return stored["result"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    result = compute()
    try:
        path.write_text(json.dumps({"published_sha256": digest, "result": result}, indent=1) + "\n", encoding="utf-8")
    except OSError:  # a read-only install: computed again next time
        pass
    return result
