"""What a model must pass before it becomes current, handed to the model store (src/store/registry.py): the
candidates computed from it, then the very load the server runs."""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import ServingConfig, Settings
from src.engine.candidates import build_candidates, verify_candidates, write_candidates
from src.engine.recommender import Recommender
from src.errors import ArtifactError, UserError
from src.logger import get_logger

logger = get_logger(__name__)


@dataclass(frozen=True)
class ServingCheck:
    """The ``serving:`` settings a model is completed and checked with (src/store/registry.py's ModelCheck)."""

    serving: ServingConfig

    @classmethod
    def from_config(cls, config: Settings | Mapping[str, Any]) -> ServingCheck:
        config = Settings.of(config)
        return cls(ServingConfig.from_config(config))

    def complete(self, folder: Path) -> None:
        """Compute the model's candidates (src/engine/candidates.py) into ``folder``, the model just written
        (``serving.candidates_per_user`` and ``candidates_per_anime``; 0: none)."""
        serving = self.serving
        if not (serving.candidates_per_user or serving.candidates_per_anime):
            return
        started = time.perf_counter()
        try:
            engine = Recommender.from_folder(folder, serving)
        except UserError as error:
            raise ArtifactError(f"the new model fails the load checks, so it was not made current: {error}") from error
        candidates = build_candidates(engine, serving.candidates_per_user, serving.candidates_per_anime)
        write_candidates(folder, candidates, serving, engine.manifest.get("hybrid"))
        logger.info("candidates: %d per user, %d per anime, computed in %.1f s", serving.candidates_per_user,
                    serving.candidates_per_anime, time.perf_counter() - started)

    def check(self, folder: Path, what: str = "the model") -> None:
        """The checks a server runs when it loads ``folder``: every artifact readable and consistent, the engine
        builds on them, and its candidates agree with live scoring. Raises ArtifactError saying what failed."""
        try:
            engine = Recommender.from_folder(folder, self.serving)
            verify_candidates(engine)
        except UserError as error:
            raise ArtifactError(f"{what} fails the load checks, so it was not made current: {error}") from error
        except Exception as error:  # any other failure would fail the server's load as well
            raise ArtifactError(f"{what} fails the load checks, so it was not made current "
                                f"({type(error).__name__}: {error})") from error
