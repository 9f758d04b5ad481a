"""HTML pages: recommendations for a user ID, title search, an anime's similar anime, favourites (cold start).

A page never shows an error page for something the visitor typed: unknown ids, bad options and empty results
become an inline message on the same page (with the HTTP status a client would expect).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, render_template, request
from werkzeug.datastructures import MultiDict

from src.engine.catalogue import Filters
from src.engine.validation import RecommendationError, UnknownAnimeError, UnknownUserError
from src.web import params
from src.web.state import EngineUnavailable, engine_state, get_engine

pages_bp = Blueprint("pages", __name__)


@dataclass
class PageResult:
    """What a page shows besides its form: items, or a message saying why there are none."""

    items: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    message_kind: str = "info"  # "info" or "error": styling only
    status: int = 200
    suggest_favourites: bool = False

    def fail(self, status: int, message: str, suggest_favourites: bool = False) -> PageResult:
        self.status, self.message, self.message_kind = status, message, "error"
        self.suggest_favourites = suggest_favourites
        return self


def _filled(form: MultiDict) -> MultiDict:
    """Form values without the blank ones: an empty field or an "any" choice means "no constraint"."""
    return MultiDict([(key, value) for key, value in form.items(multi=True) if value.strip()])


@pages_bp.app_context_processor
def _engine_context() -> dict[str, Any]:
    """Every template (error pages included) knows the limits, whether the engine is unavailable, and the model
    version that answers (the footer shows it)."""
    state = engine_state()
    sliders = state.recommender.default_weights() if state.recommender is not None else (0.5, 0.5)
    return {"serving": state.config, "unavailable": state.reason,
            "model_version": state.version if state.recommender is not None else None,
            "slider_defaults": {"user_weight": round(sliders[0], 2), "content_weight": round(sliders[1], 2)}}


def _page_context(form: MultiDict) -> dict[str, Any]:
    engine = engine_state().recommender
    return {"genres": engine.genres if engine else (), "types": engine.types if engine else (), "form": form}


def _guard(result: PageResult, action) -> PageResult:
    """Run ``action`` and turn every problem the visitor can fix into an inline message."""
    try:
        action(result)
    except EngineUnavailable:
        result.status = 503  # the banner of every page already says why
    except UnknownUserError:
        result.fail(404, "We don't know that user ID. Check it, or if you are new here, start from a few anime "
                         "you liked.", suggest_favourites=True)
    except UnknownAnimeError as error:
        result.fail(404, _sentence(str(error)))
    except RecommendationError as error:
        result.fail(400, _sentence(str(error)))
    return result


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else text


def _no_results_message(filters: Filters) -> str:
    if filters.year_from is not None and filters.year_to is not None and filters.year_from > filters.year_to:
        return f"The year range {filters.year_from} to {filters.year_to} is empty: swap the two years."
    if not filters.is_empty():
        return "Nothing matches these filters. Loosen them (fewer genres, a wider year range or a lower minimum score)."
    return "We found nothing to recommend. Try picking a few anime you liked instead."


@pages_bp.route("/", methods=["GET", "POST"])
def index() -> Any:
    """The original form: a user ID in, hybrid recommendations out (POST with field ``userID`` still works)."""
    form = _filled(request.form if request.method == "POST" else request.args)
    user_text = form.get("userID", "")
    result = PageResult()
    preferred_genres: tuple[str, ...] = ()

    def recommend(result: PageResult) -> None:
        nonlocal preferred_genres
        engine = get_engine()
        user = params.parse_id(user_text, "user")
        options = params.query_params(form, engine.config)
        result.items = engine.recommend_for_user(user, options.n, options.user_weight, options.content_weight,
                                                 options.filters)
        preferred_genres = engine.preferred_genres(user)
        if not result.items:
            result.message = _no_results_message(options.filters)
            result.suggest_favourites = options.filters.is_empty()

    if user_text:
        _guard(result, recommend)
    elif request.method == "POST":
        result.fail(400, "Enter a user ID (a whole number such as 1001), or pick a few anime you liked instead.",
                    suggest_favourites=True)
    engine = engine_state().recommender
    # Real ids from the loaded model, so the placeholder is one that works.
    example_ids = [int(user_id) for user_id in engine.user_ids[:2]] if engine else []
    return render_template("index.html", result=result, user_id=user_text, preferred_genres=preferred_genres,
                           example_ids=example_ids, **_page_context(form)), result.status


@pages_bp.get("/anime/<anime_id>")
def anime(anime_id: str) -> Any:
    """One anime and the anime most similar to it."""
    form = _filled(request.args)
    result = PageResult()
    shown: dict[str, Any] = {}

    def similar(result: PageResult) -> None:
        engine = get_engine()
        anime = params.parse_id(anime_id, "anime")
        shown.update(engine.anime(anime))
        n, filters = params.similar_params(form, engine.config)
        result.items = engine.similar_anime(anime, n, filters)
        if not result.items:
            result.message = _no_results_message(filters)

    _guard(result, similar)
    return render_template("anime.html", result=result, anime=shown or None, anime_id=anime_id,
                           **_page_context(form)), result.status


@pages_bp.get("/search")
def search() -> Any:
    """Title search without JavaScript (the suggestions box calls /api/anime/search instead)."""
    form = _filled(request.args)
    query = request.args.get("q", "")
    result = PageResult()

    def find(result: PageResult) -> None:
        engine = get_engine()
        text, limit, _ = params.search_params(form, engine.config)
        result.items = engine.search(text, limit)
        if not result.items:
            result.message = f"No title contains “{text.strip()}”. Try a shorter part of the name."

    if query.strip():
        _guard(result, find)
    return render_template("search.html", result=result, query=query, **_page_context(form)), result.status


@pages_bp.route("/favourites", methods=["GET", "POST"])
def favourites() -> Any:
    """New here? Pick a few anime you liked and get recommendations without an account (no retraining)."""
    form = _filled(request.form if request.method == "POST" else request.args)
    liked_texts = form.getlist("liked")
    result = PageResult()
    picked: list[dict[str, Any]] = []

    def recommend(result: PageResult) -> None:
        engine = get_engine()
        liked = params.parse_liked_texts(liked_texts, engine.config)
        picked.extend(engine.anime(anime_id) for anime_id in liked)
        options = params.query_params(form, engine.config)
        result.items = engine.recommend_from_favourites(liked, options.n, options.user_weight,
                                                        options.content_weight, options.filters)
        if not result.items:
            result.message = _no_results_message(options.filters)

    if liked_texts:
        _guard(result, recommend)
    elif request.method == "POST":
        result.fail(400, "Pick at least one anime you liked: type a title and choose it from the suggestions.")
    return render_template("favourites.html", result=result, picked=picked, **_page_context(form)), result.status
