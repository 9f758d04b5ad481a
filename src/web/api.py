"""The JSON API (``/api``) and the health probes (``/healthz``, ``/readyz``).

Handlers only parse, call the engine and wrap the result; every user-fixable problem becomes a 4xx JSON error
in src/web/errors.py, so no request can end in a 500 with a stack trace.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from src.engine.recommender import SERVED_FROM
from src.engine.validation import InvalidRequestError
from src.web import params
from src.web.list_import import read_uploaded_list
from src.web.openapi import openapi_document
from src.web.state import engine_state, get_engine

health_bp = Blueprint("health", __name__)
# "candidates" (computed at publish) or "live" (scored for the request): what a known user's list or a similar-anime
# list was read from (src/engine/candidates.py); a benchmark counts the fallbacks with it
SERVED_FROM_HEADER = "X-Served-From"
api_bp = Blueprint("api", __name__, url_prefix="/api")


@health_bp.get("/healthz")
def healthz() -> Any:
    """The process answers: always 200, even when there is nothing to serve."""
    return jsonify(status="ok")


@health_bp.get("/readyz")
def readyz() -> Any:
    """200 once a model is in memory, with its version; 503 with the reason otherwise (keeps a load balancer away).

    ``refused`` says why a newer model was not taken up on the last reload (the version shown still serves).
    """
    state = engine_state()
    if state.recommender is None:
        return jsonify(status="unavailable", reason=state.reason, version=None), 503
    engine = state.recommender
    body = {"status": "ready", "version": state.version, "users": engine.n_users, "anime": engine.n_anime,
            "loaded_at": state.loaded_at}
    if state.refused:
        body["refused"] = state.refused
    return jsonify(body)


@api_bp.get("/openapi.json")
def openapi() -> Any:
    state = engine_state()
    return jsonify(openapi_document(state.recommender, state.config))


@api_bp.get("/users/<user_id>/recommendations")
def user_recommendations(user_id: str) -> Any:
    engine = get_engine()
    user = params.parse_id(user_id, "user")
    options = params.query_params(request.args, engine.config)
    items = engine.recommend_for_user(user, options.n, options.user_weight, options.content_weight, options.filters)
    response = jsonify(user_id=user, preferred_genres=list(engine.preferred_genres(user)), recommendations=items)
    response.headers[SERVED_FROM_HEADER] = SERVED_FROM.get()
    return response


@api_bp.get("/anime/search")
def search() -> Any:
    engine = get_engine()
    query, limit, offset, adult = params.search_params(request.args, engine.config)
    results, total = engine.search_page(query, limit, offset, adult)
    return jsonify(query=query, total=total, offset=offset, results=results)


@api_bp.get("/anime/<anime_id>/similar")
def similar(anime_id: str) -> Any:
    engine = get_engine()
    anime = params.parse_id(anime_id, "anime")
    n, filters = params.similar_params(request.args, engine.config)
    response = jsonify(anime=engine.anime(anime), similar=engine.similar_anime(anime, n, filters))
    response.headers[SERVED_FROM_HEADER] = SERVED_FROM.get()
    return response


@api_bp.post("/recommendations")
def favourites_recommendations() -> Any:
    engine = get_engine()
    liked, options = params.favourites_params(_json_body(), engine.config)
    items = engine.recommend_from_favourites(liked, options.n, options.user_weight, options.content_weight,
                                             options.filters)
    return jsonify(liked=liked, ignored=engine.unknown_anime(liked), recommendations=items)


@api_bp.post("/lists/myanimelist")
def list_recommendations() -> Any:
    """Recommendations from a whole MyAnimeList export, sent as the body: never stored or logged (src/web/list_import.py
    reads it, the engine folds it in for this one answer)."""
    engine = get_engine()
    options = params.query_params(request.args, engine.config)
    imported = read_uploaded_list(request.mimetype, request.get_data(cache=False), engine.config)
    answer = engine.recommend_from_list(imported.entries, options.n, options.user_weight, options.content_weight,
                                        options.filters)
    return jsonify(recommendations=answer["recommendations"], plan_to_watch=answer["plan_to_watch"],
                   imported=imported.summary(answer["ignored"]), ignored=answer["ignored"])


def _json_body() -> Any:
    # No Content-Type at all is taken as JSON (a bare client forgot it); a different type is a mistake worth a
    # 415 that says which header to send, rather than a guess at what the body meant.
    if request.mimetype and not _is_json(request.mimetype):
        raise UnsupportedMediaType()
    # RecursionError: json gives up on a body nested thousands of levels deep, which fits in 64 KiB
    try:
        return request.get_json(force=True)
    except (BadRequest, RecursionError) as error:
        raise InvalidRequestError('the body is not valid JSON: send an object such as {"liked": [1, 5]}') from error


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")
