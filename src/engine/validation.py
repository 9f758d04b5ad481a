"""The request errors and the limits every request is checked against, in one place.

The engine calls these checks on every public call; the web layer (src/web/params.py) only turns text into
numbers and then calls the same checks, so a limit and its message exist once.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from config.settings import ServingConfig
from src.errors import UserError

ECHO_LENGTH = 40


class RecommendationError(UserError):
    """A request the engine cannot answer; the message says how to fix it."""


class UnknownUserError(RecommendationError):
    """The user id is not in the model."""


class UnknownAnimeError(RecommendationError):
    """An anime id is not in the catalogue."""


class InvalidRequestError(RecommendationError):
    """A parameter is out of range or names an unknown genre or type."""


def quoted(value: Any, limit: int = ECHO_LENGTH) -> str:
    """A request value quoted in an error message, cut short: a 60 kB genre need not come back in full."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def n_problem(config: ServingConfig, name: str = "n") -> str:
    return f"{name} must be a whole number from 1 to {config.max_n}"


def check_n(n: Any, config: ServingConfig, name: str = "n") -> int:
    """How many items to return: a whole number from 1 to ``max_n``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= config.max_n:
        raise InvalidRequestError(f"{n_problem(config, name)}, got {quoted(n)}")
    return int(n)


MAX_OFFSET = 100_000


def check_offset(offset: Any) -> int:
    """How many results to skip when paging: a whole number from 0."""
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequestError(f"offset must be a whole number from 0 to {MAX_OFFSET}, got {quoted(offset)}")
    return int(offset)


def weights(user_weight: float | None, content_weight: float | None) -> tuple[float, float] | None:
    """The (similar users, similar anime) sliders normalised to sum to 1, or None when neither is given (the
    model's own chosen mix). One given alone pairs with 1 minus it."""
    if user_weight is None and content_weight is None:
        return None
    for name, value in (("user_weight", user_weight), ("content_weight", content_weight)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not 0 <= value <= 1):
            raise InvalidRequestError(f"{name} must be a number from 0 to 1, got {quoted(value)}")
    user_weight = 1.0 - float(content_weight) if user_weight is None else float(user_weight)
    content_weight = 1.0 - float(user_weight) if content_weight is None else float(content_weight)
    total = user_weight + content_weight
    if total <= 0:
        raise InvalidRequestError("user_weight and content_weight cannot both be 0: raise either one")
    return user_weight / total, content_weight / total


def query_problem(config: ServingConfig) -> str:
    return f"q must be 1 to {config.max_query_length} characters of a title, e.g. q=bebop"


def check_query(query: Any, config: ServingConfig) -> str:
    if not isinstance(query, str) or not query or len(query) > config.max_query_length:
        raise InvalidRequestError(query_problem(config))
    return query


def liked_problem(config: ServingConfig) -> str:
    return f"liked must be a list of 1 to {config.max_liked} different anime ids (whole numbers), e.g. [1, 5]"


def check_liked(liked: Sequence[int], config: ServingConfig) -> list[int]:
    """1 to ``max_liked`` anime ids, each listed once (a repeat is a client bug worth saying, not hiding)."""
    liked = [int(anime_id) for anime_id in liked]
    if not 1 <= len(liked) <= config.max_liked:
        raise InvalidRequestError(liked_problem(config))
    repeated = sorted({anime_id for anime_id in liked if liked.count(anime_id) > 1})
    if repeated:
        raise InvalidRequestError(f"liked lists anime {', '.join(map(str, repeated[:5]))} more than once: "
                                  "list each anime once")
    return liked
