"""Atomic writes: a file or a whole folder appears complete or not at all.

A folder is built under a temporary sibling name and swapped in with renames only when everything in it
has been written, so a crash, Ctrl-C or SIGKILL mid-run leaves the previous version in place.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_MARKER = ".tmp-"
OLD_MARKER = ".old-"


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` next to its destination, fsync it, then rename it into place (mode 0644)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=path.name + TEMP_MARKER, dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes owner-only files; artifacts are read by other users (the container's)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON, atomically (see ``write_bytes``)."""
    write_bytes(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode("utf-8"))


def remove_stale_temporaries(target: Path) -> None:
    """Delete leftovers of runs that were killed before they could clean up."""
    if not target.parent.is_dir():
        return
    for leftover in target.parent.glob(f".{target.name}{TEMP_MARKER}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in target.parent.glob(f".{target.name}{OLD_MARKER}*"):
        shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on normal exit it replaces ``target`` in one swap.

    On any exception (KeyboardInterrupt included) the temporary folder is deleted and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARKER}", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes an owner-only folder; the published one must be readable by the server
    try:
        yield staging
        _fsync_tree(staging)
        if target.exists():
            retired = staging.with_name(f".{target.name}{OLD_MARKER}{staging.name.rsplit('-', 1)[-1]}")
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
