"""Writing output files atomically: a command that fails leaves no partial file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from scalelab import interrupts
from scalelab.errors import ScalelabError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    if not path.parent.exists():
        raise ScalelabError(f"{path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; outputs are ordinary files
        os.replace(tmp, path)
        interrupts.wrote(path)  # a Ctrl-C from now on names it among the files kept
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
