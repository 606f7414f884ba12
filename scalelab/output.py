"""Output files and folders: checked before any work, written atomically, removed when a run fails.

- ``check_output_file(path)``: refuse, before anything is computed, a path that cannot be written
  (a folder, a missing or read-only folder, a pseudo-filesystem such as /proc), with the reason.
- ``write_atomic(path, data)``: write through a temporary file and a rename, so a failure leaves no
  partial file; an OS error becomes a ``ScalelabError`` naming the path and the reason.
- ``OutputFolder``: a folder a run may create (``--report-dir``), checked up front, made when the
  run starts writing, and removed again if the run fails and leaves it empty.
- ``FileSet``: a set of report files rendered into a hidden staging folder, then moved into place
  one rename each, JSON first, so an interrupted run never leaves a mix of old and new files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from scalelab import interrupts
from scalelab.errors import ScalelabError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _probe_writable(folder: Path, what: str) -> None:
    """Create and delete a file in ``folder``: the only check that also catches read-only mounts,
    immutable folders and pseudo-filesystems, where permission bits say nothing."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".scalelab-probe-")
    except OSError as exc:
        raise ScalelabError(f"{what}: cannot write into folder {folder}: {_reason(exc)}") from None
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)


def check_output_file(path: Optional[Path], option: str = "--output") -> Optional[Path]:
    """Refuse an output file path that cannot be written, before any work; return it unchanged."""
    if path is None:
        return None
    path = Path(path)
    what = f"{option} {path}"
    if path.is_dir():
        raise ScalelabError(f"{what}: is a folder; name a file (e.g. {path / 'out.json'})")
    parent = path.parent
    if not parent.exists():
        raise ScalelabError(f"{what}: folder {parent} does not exist")
    if not parent.is_dir():
        raise ScalelabError(f"{what}: {parent} is not a folder")
    if path.exists() and not path.is_file():
        raise ScalelabError(f"{what}: exists and is not a regular file")
    _probe_writable(parent, what)
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and one rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ScalelabError(f"{path}: folder {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ScalelabError(f"{path}: cannot write: {_reason(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; outputs are ordinary files
        os.replace(tmp, path)
        interrupts.wrote(path)  # a Ctrl-C from now on names it among the files kept
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ScalelabError(f"{path}: cannot write: {_reason(exc)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutputFolder:
    """A folder a run writes into, possibly created by it.

    Checked on construction (before any work); ``with folder:`` creates what is missing, and if the
    block fails, removes the folders it created that are still empty."""

    def __init__(self, path: Path, option: str = "--report-dir"):
        self.path = Path(path)
        what = f"{option} {self.path}"
        existing = self.path
        self.missing: list[Path] = []
        while not existing.exists():
            self.missing.append(existing)
            if existing.parent == existing:
                break
            existing = existing.parent
        if not existing.is_dir():
            problem = "exists and is not a folder" if existing == self.path else f"{existing} is not a folder"
            raise ScalelabError(f"{what}: {problem}")
        _probe_writable(existing, what)

    def __enter__(self) -> Path:
        for folder in reversed(self.missing):
            try:
                folder.mkdir()
            except FileExistsError:
                pass
            except OSError as exc:
                raise ScalelabError(f"{folder}: cannot create folder: {_reason(exc)}") from None
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            return
        for folder in self.missing:  # deepest first
            try:
                folder.rmdir()  # only succeeds when empty: whatever the run kept stays
            except OSError:
                break


class FileSet:
    """Files of one report, written together.

    ``path(name)`` is where to render a file (inside a hidden staging folder); ``commit(first)``
    moves them into ``folder`` by rename, the names in ``first`` before the others. Leaving the
    ``with`` block removes the staging folder and whatever was not committed."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._stage: Optional[Path] = None

    def __enter__(self) -> "FileSet":
        try:
            self._stage = Path(tempfile.mkdtemp(dir=self.folder, prefix=".scalelab-staging-"))
        except OSError as exc:
            raise ScalelabError(f"{self.folder}: cannot write: {_reason(exc)}") from None
        interrupts.staging(self._stage)  # a Ctrl-C names a file once it is in place, not as a draft
        return self

    def path(self, name: str) -> Path:
        assert self._stage is not None, "use FileSet in a with block"
        return self._stage / name

    def write(self, name: str, data: bytes) -> Path:
        self.path(name).write_bytes(data)
        return self.folder / name

    def commit(self, first: Iterable[str] = ()) -> None:
        assert self._stage is not None
        staged = sorted(p.name for p in self._stage.iterdir())
        first = [n for n in first if n in staged]
        for name in first + [n for n in staged if n not in first]:
            target = self.folder / name
            try:
                os.chmod(self._stage / name, 0o666 & ~_umask())
                os.replace(self._stage / name, target)
            except OSError as exc:
                raise ScalelabError(f"{target}: cannot write: {_reason(exc)}") from None
            interrupts.wrote(target)

    def __exit__(self, *exc) -> None:
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
