"""Versioned model artifacts: every published model keeps its own folder, one pointer says which one is current.

    artifacts/
      models/
        20250301T101500Z-3f2a9c1d/     a published model (the files of src/store/artifacts.py), named by its version
        20250302T090000Z-77b01e4a/
      model -> models/20250302T090000Z-77b01e4a     the current version: what serving, evaluation and scripts read

- ``publish_model`` is what training writes through. The run fills a temporary folder beside the pointer
  (``.model.tmp-*``, as utils/atomic.py names it). Only when the run completes does the folder get its version
  id, written into its manifest: the UTC time plus a short hash of the manifest's ``data`` and ``config``, so
  equal hashes mean equal inputs. It then has to pass the load checks the server runs. Only then is it renamed
  into ``models/`` and made current in one step: a new symlink renamed over the old. A run that fails, is
  interrupted or is killed never touches ``models/`` or the pointer.
- After a publish, the current version and the ``serving.keep_versions`` most recent others are kept; older
  ones are deleted. A version that any other pointer beside this one links to is never deleted.
- ``activate`` and ``rollback`` make another kept version current, after the same load checks.

The pointer is a relative symlink, so a whole artifacts folder can be moved or copied. A real folder at the
pointer's place (the layout before versions, or what ``dvc checkout`` restores) still serves as it is. The next
publish adopts it into ``models/`` under its own version.

Read a model through ``resolve_model_dir``, or through ``load_model_artifacts``, which resolves the pointer
once. A reader that resolves the pointer once sees one version whole, even while another is being published.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from config.settings import Settings
from src.errors import ArtifactError, UserError
from src.logger import get_logger
from utils.atomic import TEMP_MARKER, remove_stale_temporaries, write_json

logger = get_logger(__name__)

VERSIONS_DIRNAME = "models"
MANIFEST = "manifest.json"
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_VERSION = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}(-\d+)?")
_LINK_MARKER = ".link-"
_HASH_LENGTH = 8


@dataclass(frozen=True)
class ModelVersion:
    """One kept model: its version id, folder and what its manifest says about it."""

    version: str
    path: Path
    published_at: str | None
    users: int | None
    anime: int | None
    current: bool


# ---------------------------------------------------------------------------------------------------------
# Version ids
# ---------------------------------------------------------------------------------------------------------
def inputs_hash(manifest: dict[str, Any]) -> str:
    """A short hash of what went into a model: the manifest's ``data`` summary and ``config``."""
    inputs = json.dumps({"data": manifest.get("data"), "config": manifest.get("config")}, sort_keys=True,
                        default=str, separators=(",", ":"))
    return hashlib.sha256(inputs.encode("utf-8")).hexdigest()[:_HASH_LENGTH]


def new_version_id(manifest: dict[str, Any], when: datetime | None = None) -> str:
    """``20250302T090000Z-77b01e4a``: the UTC time, then the inputs' hash."""
    return f"{(when or datetime.now(UTC)).astimezone(UTC).strftime(_TIME_FORMAT)}-{inputs_hash(manifest)}"


def is_version_id(text: str) -> bool:
    return bool(_VERSION.fullmatch(text))


def version_of(manifest: dict[str, Any]) -> str:
    """The version id a model's manifest names. A manifest from before versions gets a stable stand-in: the time
    it was created (when it says so) and its inputs' hash."""
    version = manifest.get("version")
    if isinstance(version, str) and version:
        return version
    return new_version_id(manifest, _created_at(manifest) or datetime.fromtimestamp(0, UTC))


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the model in ``folder``; raises ArtifactError when it is missing or not a JSON object."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ArtifactError(f"{folder} holds no {MANIFEST}: it is not a complete model; retrain") from error
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{path} is unreadable ({type(error).__name__}: {error}); retrain") from error
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} must be a JSON object; retrain")
    return manifest


def _created_at(manifest: dict[str, Any]) -> datetime | None:
    try:
        created = datetime.fromisoformat(str(manifest["created_at"]))
    except (KeyError, ValueError):
        return None
    return created if created.tzinfo else created.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------------
# Where things are
# ---------------------------------------------------------------------------------------------------------
def versions_dir(pointer: str | Path) -> Path:
    """The folder holding every kept version of the model at ``pointer`` (``artifacts/models`` for
    ``artifacts/model``)."""
    pointer = Path(pointer)
    if pointer.name == VERSIONS_DIRNAME:
        raise UserError(f"a model pointer cannot be named {VERSIONS_DIRNAME!r}: that name holds its versions")
    return pointer.parent / VERSIONS_DIRNAME


def resolve_model_dir(pointer: str | Path) -> Path:
    """The folder the pointer names right now (the pointer itself when it is a real folder, or when it is missing).

    Resolve once, then read every file from the result. Reading each file through the pointer could mix two
    versions if a publish happens in between.
    """
    pointer = Path(pointer)
    return Path(os.path.realpath(pointer)) if pointer.is_symlink() else pointer


def current_version(pointer: str | Path) -> str | None:
    """The version id of the current model, or None when there is none (nothing published, or no manifest)."""
    folder = resolve_model_dir(pointer)
    try:
        return version_of(read_manifest(folder))
    except ArtifactError:
        return None


def list_versions(pointer: str | Path) -> list[ModelVersion]:
    """Every kept version, newest first, with the current one marked. A real folder at the pointer's place is
    listed too, as current."""
    pointer = Path(pointer)
    current = Path(os.path.realpath(pointer))
    folders = _version_folders(pointer)
    if pointer.is_dir() and not pointer.is_symlink():
        folders.append(pointer)
    found = []
    for folder in folders:
        try:
            manifest = read_manifest(folder)
        except ArtifactError:
            continue  # not a model (an unrelated folder, or one being deleted)
        counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
        found.append(ModelVersion(
            version=folder.name if folder.parent == versions_dir(pointer) else version_of(manifest),
            path=folder, published_at=manifest.get("published_at") or manifest.get("created_at"),
            users=counts.get("users", manifest.get("n_users")), anime=counts.get("anime", manifest.get("n_anime")),
            current=Path(os.path.realpath(folder)) == current))
    return sorted(found, key=_order, reverse=True)


def _order(version: ModelVersion) -> tuple[str, str]:
    # Publication order: published_at has microseconds; the id's leading time breaks ties and covers old manifests.
    return (_normalised_time(version.published_at) or version.version[:16], version.version)


def _normalised_time(text: str | None) -> str | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")


def _version_folders(pointer: Path) -> list[Path]:
    folder = versions_dir(pointer)
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if path.is_dir() and not path.is_symlink()
            and not path.name.startswith(".")]


class ModelCheck(Protocol):
    """What the serving side does with a model before it becomes current; handed in by the caller, so the store
    never imports the engine (src/engine/model_check.py is the one in use)."""

    def complete(self, folder: Path) -> None:
        """Add to the written model what is computed from it (the candidates)."""

    def check(self, folder: Path, what: str) -> None:
        """The server's load checks; raises ArtifactError saying what failed (``what``: the model's name)."""


# ---------------------------------------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------------------------------------
def keep_versions(config: Settings | Mapping[str, Any]) -> int:
    """``serving.keep_versions``: how many versions besides the current one a publish keeps."""
    config = Settings.of(config)
    value = config.serving.keep_versions
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UserError(f"config serving.keep_versions must be a whole number >= 0 (earlier models kept for "
                        f"rollback), not {value!r}")
    return value


@contextlib.contextmanager
def publish_model(pointer: str | Path, config: Settings | Mapping[str, Any], model_check: ModelCheck) -> Iterator[Path]:
    """Yield an empty temporary folder to write a model into; on normal exit it becomes the current version.

    On any exception (KeyboardInterrupt included), and when the finished model fails the server's load checks,
    the folder is deleted and the current model stays current. ``config``: the project config (its ``serving``
    section sets ``keep_versions``); ``model_check``: completes the written model and runs the server's load checks.
    """
    config = Settings.of(config)
    pointer = Path(pointer)
    keep = keep_versions(config)
    versions_dir(pointer)  # refuses an impossible pointer name before any work
    pointer.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(pointer)  # what killed runs left behind
    staging = Path(tempfile.mkdtemp(prefix=f".{pointer.name}{TEMP_MARKER}", dir=pointer.parent))
    staging.chmod(0o755)  # mkdtemp makes an owner-only folder; the server may run as another user
    try:
        yield staging
        model_check.complete(staging)
        manifest = read_manifest(staging)
        manifest["published_at"] = datetime.now(UTC).isoformat(timespec="microseconds")
        manifest["version"] = new_version_id(manifest)
        write_json(staging / MANIFEST, manifest)
        _fsync_tree(staging)
        model_check.check(staging, "the new model")
        with _lock(pointer):
            version = _unique_name(versions_dir(pointer), manifest["version"])
            if version != manifest["version"]:  # two publishes of the same inputs within one second
                manifest["version"] = version
                write_json(staging / MANIFEST, manifest)
            folder = versions_dir(pointer) / version
            folder.parent.mkdir(exist_ok=True)
            os.rename(staging, folder)
            _fsync_dir(folder.parent)
            previous = current_version(pointer)
            try:
                _point(pointer, version)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)  # never current: do not keep a half-published version
                raise
            _prune(pointer, keep)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("published model version %s as current at %s (previous: %s; kept: %s)", version, pointer,
                previous or "none", ", ".join(v.version for v in list_versions(pointer)))


# ---------------------------------------------------------------------------------------------------------
# Switching versions
# ---------------------------------------------------------------------------------------------------------
def activate(pointer: str | Path, version: str, model_check: ModelCheck) -> ModelVersion:
    """Make the kept ``version`` current, once it passes the load checks; raises UserError otherwise."""
    pointer = Path(pointer)
    with _lock(pointer):
        kept = {entry.version: entry for entry in list_versions(pointer)}
        entry = kept.get(version)
        if entry is None or entry.path.parent != versions_dir(pointer):
            names = ", ".join(kept) or "none"
            raise UserError(f"there is no kept model version {version!r} under {versions_dir(pointer)} "
                            f"(kept: {names}); `anime-models list` shows them")
        model_check.check(entry.path, f"model version {version}")
        _point(pointer, version)
    logger.info("model version %s is now current at %s", version, pointer)
    return entry


def rollback(pointer: str | Path, model_check: ModelCheck, version: str | None = None) -> tuple[str | None, str]:
    """Make ``version`` current, by default the one published before the current one; returns (was, now)."""
    pointer = Path(pointer)
    versions = list_versions(pointer)
    was = next((entry.version for entry in versions if entry.current), None)
    if version is None:
        position = next((i for i, entry in enumerate(versions) if entry.current), None)
        older = versions[position + 1:] if position is not None else []
        older = [entry for entry in older if entry.path.parent == versions_dir(pointer)]
        if not older:
            raise UserError(f"no earlier model version to roll back to under {versions_dir(pointer)} (kept: "
                            f"{', '.join(entry.version for entry in versions) or 'none'})")
        version = older[0].version
    activate(pointer, version, model_check)
    return was, version


# ---------------------------------------------------------------------------------------------------------
# The pointer, the lock and pruning
# ---------------------------------------------------------------------------------------------------------
def _point(pointer: Path, version: str) -> None:
    """Make ``pointer`` a symlink to models/``version`` in one rename (readers see the old or the new target)."""
    if pointer.is_dir() and not pointer.is_symlink():
        _adopt(pointer)
    link = pointer.with_name(f".{pointer.name}{_LINK_MARKER}{uuid.uuid4().hex[:8]}")
    os.symlink(Path(VERSIONS_DIRNAME) / version, link)
    try:
        os.replace(link, pointer)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        raise
    _fsync_dir(pointer.parent)


def _adopt(pointer: Path) -> None:
    """Move a real model folder at the pointer's place into models/ under its version, so it can be rolled back
    to. The pointer is missing between this rename and the symlink's, for microseconds.
    """
    manifest = read_manifest(pointer) if (pointer / MANIFEST).is_file() else None
    if manifest is None:  # not a model (a half-deleted folder): it could never have served
        retired = pointer.with_name(f".{pointer.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(pointer, retired)
        shutil.rmtree(retired, ignore_errors=True)
        return
    target_dir = versions_dir(pointer)
    target_dir.mkdir(exist_ok=True)
    version = _unique_name(target_dir, version_of(manifest))
    os.rename(pointer, target_dir / version)
    if manifest.get("version") != version:
        manifest["version"] = version
        write_json(target_dir / version / MANIFEST, manifest)
    logger.info("adopted the model folder at %s as version %s", pointer, version)


def _unique_name(folder: Path, name: str) -> str:
    candidate, number = name, 1
    while (folder / candidate).exists():
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def _prune(pointer: Path, keep: int) -> None:
    """Delete versions beyond the current one and the ``keep`` most recent others; never one that a pointer
    beside this one links to. A failure here is logged: the publish itself has succeeded."""
    protected = {Path(os.path.realpath(path)) for path in pointer.parent.iterdir() if path.is_symlink()}
    others = [entry for entry in list_versions(pointer) if not entry.current
              and entry.path.parent == versions_dir(pointer)]
    for entry in others[keep:]:
        if Path(os.path.realpath(entry.path)) in protected:
            continue
        try:
            shutil.rmtree(entry.path)
        except OSError as error:
            logger.warning("could not delete the old model version %s: %s", entry.path, error)
        else:
            logger.info("deleted model version %s (serving.keep_versions: %d)", entry.version, keep)


@contextlib.contextmanager
def _lock(pointer: Path) -> Iterator[None]:
    """One publish or switch at a time per pointer (an advisory lock beside it)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    with open(pointer.with_name(f".{pointer.name}.lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
