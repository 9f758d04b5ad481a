"""The process-wide engine: loaded once by the app factory, read by every request.

Loading never raises: when the artifacts are missing or inconsistent the app still starts, /healthz says the
process is alive, and /readyz, the API and the pages all report the reason instead of recommending.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app

from config.loader import load_config
from src.engine.serving_config import ServingConfig
from src.errors import UserError
from src.logger import get_logger
from src.recommender import Recommender

logger = get_logger(__name__)
EXTENSION_KEY = "anime_recommender"


@dataclass(frozen=True)
class EngineState:
    recommender: Recommender | None
    reason: str | None  # why there is no recommender; None when ready
    config: ServingConfig  # the limits requests are checked against, known even when nothing is loaded


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
    return state


def _build_state(folder: Path, config: ServingConfig) -> EngineState:
    try:
        return EngineState(Recommender.from_folder(folder, config), None, config)
    except UserError as error:
        logger.error("not serving recommendations: %s", error)
        return EngineState(None, str(error), config)
    except Exception as error:  # a bug or an exotic corruption must not keep /healthz from answering
        logger.exception("loading the model artifacts from %s failed", folder)
        return EngineState(None, f"loading the model artifacts from {folder} failed ({type(error).__name__}); "
                                 "see the server log, then retrain or fix the artifacts", config)


def engine_state() -> EngineState:
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
