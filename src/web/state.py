"""The process-wide engine: loaded by the app factory, swapped for a newer model on reload, pinned per request.

Loading never raises: when the artifacts are missing or inconsistent the app still starts, /healthz says the
process is alive, and /readyz, the API and the pages all report the reason instead of recommending.

Model versions (src/store/registry.py): ``ARTIFACTS_DIR`` is usually the ``artifacts/model`` pointer. It is
resolved once per load, so an engine is built from one version's files, never a mix. ``reload_engine`` is what
a gunicorn HUP runs in the master (gunicorn.conf.py) before the new workers fork. It builds the current
version; if that fails its load checks, the engine that was serving stays, and /readyz reports the refusal.
Each request pins the state it started with (``pin_engine``), so one response never mixes two models.
"""
from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, current_app, g, has_request_context

from config.loader import load_config
from config.settings import ServingConfig
from src.engine.recommender import Recommender
from src.errors import UserError
from src.logger import get_logger
from src.store.registry import resolve_model_dir, version_of

logger = get_logger(__name__)
EXTENSION_KEY = "anime_recommender"
NO_VERSION = "none"  # X-Model-Version when no model is loaded
_PINNED = "_anime_engine_state"

# What identifies a model on disk: the folder the pointer names, and its manifest file's identity.
Signature = tuple[str, int, int, int]


@dataclass(frozen=True)
class EngineState:
    recommender: Recommender | None
    reason: str | None  # why there is no recommender; None when ready
    config: ServingConfig  # the limits requests are checked against, known even when nothing is loaded
    version: str | None = None  # the serving model's version id (its manifest's), None when nothing is loaded
    source: str | None = None  # the folder the model was read from (the pointer resolved)
    loaded_at: str | None = None  # UTC, when this process built the engine
    signature: Signature | None = None  # the files it was built from, to tell whether a reload has anything to do
    refused: str | None = None  # a newer model that failed its load checks, and why (the old one still serves)

    @property
    def header_version(self) -> str:
        return self.version if self.recommender is not None and self.version else NO_VERSION


class EngineUnavailable(Exception):
    """Raised by ``get_engine`` when the artifacts could not be loaded; carries the reason."""


def load_engine(app: Flask) -> EngineState:
    """Build the recommender from ``app.config['ARTIFACTS_DIR']`` and keep it on the app.

    The serving settings are ``app.config['SERVING_CONFIG']`` when given (tests), otherwise the project config,
    read exactly as the command-line tools read it.
    """
    config = _serving_config(app.config.get("SERVING_CONFIG"), app.config.get("CONFIG_PATH"))
    state = _build_state(Path(app.config["ARTIFACTS_DIR"]), config)
    app.extensions[EXTENSION_KEY] = state
    freeze_heap()
    return state


def reload_engine(app: Flask) -> EngineState:
    """Serve the model the artifacts pointer names now, if it loads; otherwise keep serving the current one.

    Nothing is rebuilt when the pointer still names the files already loaded. A new model that fails its load
    checks leaves the serving engine in place with ``refused`` saying why. Only when nothing was serving does
    the new state replace the old whatever it holds (a reason to show, or a model).
    """
    old: EngineState = app.extensions[EXTENSION_KEY]
    folder = Path(app.config["ARTIFACTS_DIR"])
    if old.recommender is not None and old.signature is not None and model_signature(folder) == old.signature:
        logger.info("model version %s is still current: nothing to reload", old.version)
        state = replace(old, refused=None)
    else:
        new = _build_state(folder, old.config)
        if new.recommender is None and old.recommender is not None:
            refused = new.reason or "it could not be loaded"
            logger.error("kept serving model version %s: the current model at %s was not loaded: %s",
                         old.version, folder, refused)
            state = replace(old, refused=f"the model at {new.source or folder} was not loaded, so version "
                                         f"{old.version} still serves: {refused}")
        else:
            if new.recommender is not None:
                logger.info("now serving model version %s (was %s)", new.version, old.version or "none")
            state = new
    app.extensions[EXTENSION_KEY] = state
    freeze_heap()
    return state


def freeze_heap() -> None:
    """Move everything alive now (the loaded model's ~170,000 Python objects) out of the garbage collector's sight.

    A full collection walks every tracked object: 80-130 ms with the model loaded, and parsing a large imported
    list triggers one about every request (bench/list_import.py: a 1,000-entry list's p99 221 ms, 34 ms frozen).
    What is frozen is still freed by reference counting; on a reload the old model's cycles are collected first.
    Under gunicorn this runs in the master before it forks, so the workers never touch those objects' pages either.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def model_signature(folder: str | Path) -> Signature | None:
    """Where ``folder`` (a pointer) leads and which manifest file is there; None when there is no model."""
    resolved = resolve_model_dir(folder)
    try:
        manifest = os.stat(resolved / "manifest.json")
    except OSError:
        return None
    return (str(resolved), manifest.st_ino, manifest.st_mtime_ns, manifest.st_size)


def _build_state(folder: Path, config: ServingConfig) -> EngineState:
    signature = model_signature(folder)
    source = Path(signature[0]) if signature else resolve_model_dir(folder)
    loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    try:
        recommender = Recommender.from_folder(source, config)
    except UserError as error:
        logger.error("not serving recommendations: %s", error)
        return EngineState(None, str(error), config, source=str(source), loaded_at=loaded_at, signature=signature)
    except Exception as error:  # a bug or an exotic corruption must not keep /healthz from answering
        logger.exception("loading the model artifacts from %s failed", source)
        return EngineState(None, f"loading the model artifacts from {source} failed ({type(error).__name__}); "
                                 "see the server log, then retrain or fix the artifacts", config,
                           source=str(source), loaded_at=loaded_at, signature=signature)
    version = version_of(recommender.manifest)
    logger.info("loaded model version %s from %s in %.2f s", version, source, time.perf_counter() - started)
    return EngineState(recommender, None, config, version=version, source=str(source), loaded_at=loaded_at,
                       signature=signature)


def pin_engine() -> None:
    """Before each request: the state it will use throughout, even if a reload swaps the app's meanwhile."""
    setattr(g, _PINNED, current_app.extensions[EXTENSION_KEY])


def engine_state() -> EngineState:
    """The state of the current request (pinned when it started), else the app's."""
    if has_request_context():
        pinned = g.get(_PINNED)
        if pinned is not None:
            return pinned
    return current_app.extensions[EXTENSION_KEY]


def get_engine() -> Recommender:
    state = engine_state()
    if state.recommender is None:
        raise EngineUnavailable(state.reason or "the recommender is not loaded")
    return state.recommender


def _serving_config(given: ServingConfig | dict | None, config_path: str | None) -> ServingConfig:
    """The serving settings; a broken config file stops the app with its reason (nothing sensible to serve)."""
    if isinstance(given, ServingConfig):
        return given
    if isinstance(given, dict):
        return ServingConfig.from_mapping(given)
    return ServingConfig.from_config(load_config(config_path))
