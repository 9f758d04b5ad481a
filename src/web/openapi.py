"""The OpenAPI 3 description of the JSON API, built from the same limits the handlers enforce.

When the engine is loaded, ``genre`` and ``type`` are published as enums of the catalogue's values, so a
schema-driven fuzzer generates valid filters and the documented 400 covers everything else.
"""
from __future__ import annotations

from typing import Any

from config.settings import ServingConfig
from src.engine.recommender import Recommender
from src.engine.validation import MAX_OFFSET
from src.web import params
from src.web.list_import import LIST_MEDIA_TYPES

_NULLABLE_STRING = {"type": "string", "nullable": True}
WEIGHT_HELP = {
    "user_weight": "Share of the 'similar users' side of the mix (the NCF's own score and what similar users "
                   "loved), relative to content_weight. Leave both out for the mix chosen for this model; one given "
                   "alone pairs with 1 minus it.",
    "content_weight": "Share of the 'similar anime' side of the mix (EASE's item-item weights and anime similar to "
                      "the ones you loved).",
}
_NULLABLE_INTEGER = {"type": "integer", "nullable": True}
ADULT_HELP = ("Also show adult titles (MyAnimeList's Rx - Hentai rating). They are never shown by default, whatever "
              "a known user's own history holds.")
ADULT_PARAMETER = {"name": "include_adult", "in": "query", "required": False, "description": ADULT_HELP,
                   "schema": {"type": "boolean", "default": False}}
_NULLABLE_NUMBER = {"type": "number", "nullable": True}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description, **extra}


def _filter_parameters(genre: dict[str, Any], type_schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _query("genre", {"type": "array", "items": genre, "maxItems": params.MAX_FILTER_VALUES},
               "Only anime having every listed genre (repeatable).", style="form", explode=True),
        _query("type", {"type": "array", "items": type_schema, "maxItems": params.MAX_FILTER_VALUES},
               "Only anime of one of the listed types (repeatable).", style="form", explode=True),
        _query("min_score", {"type": "number", "minimum": params.SCORE_MIN, "maximum": params.SCORE_MAX},
               "Only anime with at least this MyAnimeList score (anime without a score are left out)."),
        _query("year_from", {"type": "integer", "minimum": params.YEAR_MIN, "maximum": params.YEAR_MAX},
               "Only anime that premiered in or after this year (after year_to: an empty range, no results)."),
        _query("year_to", {"type": "integer", "minimum": params.YEAR_MIN, "maximum": params.YEAR_MAX},
               "Only anime that premiered in or before this year."),
        ADULT_PARAMETER,
    ]


def _value_schemas(engine: Recommender | None) -> tuple[dict[str, Any], dict[str, Any]]:
    genre: dict[str, Any] = {"type": "string", "minLength": 1}
    type_schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if engine is not None and engine.genres:
        genre = {"type": "string", "enum": list(engine.genres)}
    if engine is not None and engine.types:
        type_schema = {"type": "string", "enum": list(engine.types)}
    return genre, type_schema


def _schemas(config: ServingConfig, genre: dict[str, Any], type_schema: dict[str, Any]) -> dict[str, Any]:
    anime_properties = {
        "anime_id": {"type": "integer"},
        "name": {"type": "string"},
        "english_name": _NULLABLE_STRING,
        "genres": {"type": "array", "items": {"type": "string"}},
        "type": _NULLABLE_STRING,
        "episodes": _NULLABLE_INTEGER,
        "premiered": _NULLABLE_STRING,
        "year": _NULLABLE_INTEGER,
        "score": _NULLABLE_NUMBER,
        "members": {"type": "integer"},
        "japanese_name": _NULLABLE_STRING,
        "studios": {"type": "array", "items": {"type": "string"}},
        "synopsis": _NULLABLE_STRING,
        "image_url": {"type": "string", "nullable": True, "description": "Poster, where the metadata has one."},
        "rated": {"type": "boolean", "description": "Whether the anime has community ratings in the data the model "
                                                    "learned from; one without is found and recommended by content."},
        "not_yet_aired": {"type": "boolean", "description": "Not aired when the metadata was made: found by search, "
                                                            "never recommended or listed as similar."},
        "reasons": {"type": "array", "items": {"type": "string"}, "description": "Why this item is shown."},
    }
    weight = {"type": "number", "minimum": params.WEIGHT_MIN, "maximum": params.WEIGHT_MAX}
    return {
        "Anime": {"type": "object", "required": list(anime_properties), "properties": anime_properties},
        "Recommendation": {"allOf": [{"$ref": "#/components/schemas/Anime"}, {
            "type": "object", "required": ["match"],
            "properties": {"match": {"type": "number", "minimum": 0, "maximum": 1,
                                     "description": "Hybrid score: weighted mean of the normalised components."}}}]},
        "SimilarAnime": {"allOf": [{"$ref": "#/components/schemas/Anime"}, {
            "type": "object", "required": ["similarity"],
            "properties": {"similarity": {"type": "number", "minimum": -1, "maximum": 1,
                                          "description": "Cosine similarity of the anime embeddings."}}}]},
        "UserRecommendations": {"type": "object", "required": ["user_id", "preferred_genres", "recommendations"],
                                "properties": {"user_id": {"type": "integer"},
                                               "preferred_genres": {"type": "array", "items": {"type": "string"}},
                                               "recommendations": {"type": "array", "items": {
                                                   "$ref": "#/components/schemas/Recommendation"}}}},
        "SimilarResponse": {"type": "object", "required": ["anime", "similar"],
                            "properties": {"anime": {"$ref": "#/components/schemas/Anime"},
                                           "similar": {"type": "array",
                                                       "items": {"$ref": "#/components/schemas/SimilarAnime"}}}},
        "SearchResponse": {"type": "object", "required": ["query", "total", "offset", "results"],
                           "properties": {"query": {"type": "string"},
                                          "total": {"type": "integer", "description": "Anime found in all."},
                                          "offset": {"type": "integer"},
                                          "results": {"type": "array",
                                                      "items": {"$ref": "#/components/schemas/Anime"}}}},
        "FavouritesRequest": {
            "type": "object", "required": ["liked"], "additionalProperties": False,
            # both weights 0 would leave nothing to rank by
            "not": {"required": ["user_weight", "content_weight"],
                    "properties": {"user_weight": {"enum": [0]}, "content_weight": {"enum": [0]}}},
            "properties": {
                "liked": {"type": "array", "minItems": 1, "maxItems": config.max_liked, "uniqueItems": True,
                          "items": {"type": "integer", "minimum": 0, "maximum": params.MAX_ID},
                          "description": "MyAnimeList ids of anime the person liked "
                                         "(find them with /api/anime/search)."},
                "n": {"type": "integer", "minimum": 1, "maximum": config.max_n, "default": config.default_n},
                "user_weight": {**weight, "description": WEIGHT_HELP["user_weight"]},
                "content_weight": {**weight, "description": WEIGHT_HELP["content_weight"]},
                "genre": {"oneOf": [genre, {"type": "array", "items": genre, "maxItems": params.MAX_FILTER_VALUES}]},
                "type": {"oneOf": [type_schema,
                                   {"type": "array", "items": type_schema, "maxItems": params.MAX_FILTER_VALUES}]},
                "min_score": {"type": "number", "minimum": params.SCORE_MIN, "maximum": params.SCORE_MAX},
                "year_from": {"type": "integer", "minimum": params.YEAR_MIN, "maximum": params.YEAR_MAX},
                "year_to": {"type": "integer", "minimum": params.YEAR_MIN, "maximum": params.YEAR_MAX},
                "include_adult": {"type": "boolean", "default": False, "description": ADULT_HELP},
            },
        },
        "FavouritesResponse": {"type": "object", "required": ["liked", "ignored", "recommendations"],
                               "properties": {"liked": {"type": "array", "items": {"type": "integer"}},
                                              "ignored": {"type": "array", "items": {"type": "integer"},
                                                          "description": "Liked ids the catalogue does not know: "
                                                                         "skipped."},
                                              "recommendations": {"type": "array", "items": {
                                                  "$ref": "#/components/schemas/Recommendation"}}}},
        "ListResponse": {
            "type": "object", "required": ["recommendations", "plan_to_watch", "imported", "ignored"],
            "properties": {
                "recommendations": {"type": "array", "items": {"$ref": "#/components/schemas/Recommendation"},
                                    "description": "Best first; nothing on the list, whatever its status."},
                "plan_to_watch": {"type": "array", "items": {"$ref": "#/components/schemas/Recommendation"},
                                  "maxItems": config.list_plan_to_watch,
                                  "description": "The list's own plan-to-watch titles that fit the person best."},
                "imported": {"type": "object", "required": ["entries", "known", "rated", "by_status", "skipped"],
                             "properties": {
                                 "entries": {"type": "integer", "description": "Usable entries read."},
                                 "known": {"type": "integer", "description": "Of them, in the catalogue."},
                                 "rated": {"type": "integer", "description": "Of them, with a score (1-10)."},
                                 "by_status": {"type": "object", "additionalProperties": {"type": "integer"},
                                               "description": "Entries per status: watching, completed, on_hold, "
                                                              "dropped, plan_to_watch."},
                                 "skipped": {"type": "object", "description": "Entries not read: without a "
                                             "MyAnimeList id (without_id), repeated ids (repeats).",
                                             "additionalProperties": {"type": "integer"}}}},
                "ignored": {"type": "array", "items": {"type": "integer"},
                            "description": "Ids on the list the catalogue does not know: not used."}}},
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
        "Ready": {"type": "object", "required": ["status", "version"],
                  "properties": {"status": {"type": "string", "enum": ["ready"]},
                                 "version": {"type": "string", "description": "The serving model's version id "
                                             "(also in every response's X-Model-Version header)."},
                                 "users": {"type": "integer"}, "anime": {"type": "integer"},
                                 "loaded_at": {"type": "string", "description": "When this server loaded it (UTC)."},
                                 "refused": {"type": "string", "description": "Why a newer model was not taken up "
                                             "on the last reload; the version above still serves."}}},
        "Unavailable": {"type": "object", "required": ["status", "reason"],
                        "properties": {"status": {"type": "string", "enum": ["unavailable"]},
                                       "reason": {"type": "string"}, "version": {"type": "string", "nullable": True}}},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["status", "message"],
            "properties": {"status": {"type": "integer", "minimum": 400, "maximum": 599},
                           "message": {"type": "string", "description": "What was wrong and how to fix it."}}}}},
    }


def openapi_document(engine: Recommender | None, config: ServingConfig) -> dict[str, Any]:
    """The OpenAPI 3.0 document; published at /api/openapi.json."""
    genre, type_schema = _value_schemas(engine)
    n = _query("n", {"type": "integer", "minimum": 1, "maximum": config.max_n, "default": config.default_n},
               "How many items to return.")
    weights = [
        _query("user_weight", {"type": "number", "minimum": params.WEIGHT_MIN, "maximum": params.WEIGHT_MAX},
               WEIGHT_HELP["user_weight"] + " The two may not both be 0 (answered with 400): OpenAPI cannot express "
               "that rule."),
        _query("content_weight", {"type": "number", "minimum": params.WEIGHT_MIN, "maximum": params.WEIGHT_MAX},
               WEIGHT_HELP["content_weight"]),
    ]
    filters = _filter_parameters(genre, type_schema)
    unavailable = _error_response("Model artifacts are missing or inconsistent; the message says why.")
    too_long = {"description": "The request line is longer than the server accepts (gunicorn: 8190 bytes)."}
    id_schema = {"type": "integer", "minimum": 0, "maximum": params.MAX_ID}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Anime recommender API", "version": "1.0.0",
                 "description": "Hybrid anime recommendations (user-based + content-based) from NCF embeddings "
                                "trained on MyAnimeList ratings. "
                                "Errors are JSON {\"error\": {\"status\", \"message\"}}."},
        "paths": {
            "/api/users/{user_id}/recommendations": {"get": {
                "operationId": "recommendForUser",
                "summary": "Hybrid recommendations for a known MyAnimeList user; never anime they rated or watched.",
                "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": id_schema},
                               n, *weights, *filters],
                "responses": {"200": _ok("Recommendations, best first.", "UserRecommendations"),
                              "400": _error_response("A malformed id or parameter, an unknown genre or type."),
                              "404": _error_response("The user is not in the model."),
                              "503": unavailable, "414": too_long}}},
            "/api/anime/{anime_id}/similar": {"get": {
                "operationId": "similarAnime",
                "summary": "Anime most similar to one anime (cosine over anime embeddings), itself excluded.",
                "parameters": [{"name": "anime_id", "in": "path", "required": True, "schema": id_schema}, n, *filters],
                "responses": {"200": _ok("The anime and its most similar anime.", "SimilarResponse"),
                              "400": _error_response("A malformed id or parameter."),
                              "404": _error_response("The anime is not in the model."),
                              "503": unavailable, "414": too_long}}},
            "/api/anime/search": {"get": {
                "operationId": "searchAnime",
                "summary": "Find anime by any of their titles, however a fan spells them: punctuation and word "
                           "order do not matter, typos and abbreviations (fma, jjk) are understood; the main series "
                           "first among equal matches.",
                "parameters": [
                    {"name": "q", "in": "query", "required": True, "description": "Part of a title.",
                     "schema": {"type": "string", "minLength": 1, "maxLength": config.max_query_length}},
                    _query("limit",
                           {"type": "integer", "minimum": 1, "maximum": config.max_n, "default": config.default_n},
                           "How many results to return at most."),
                    _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
                           "How many results to skip: the next page starts at offset + limit."),
                    ADULT_PARAMETER],
                "responses": {"200": _ok("Matching anime, best first (possibly none).", "SearchResponse"),
                              "400": _error_response("q missing, empty or too long, or limit or offset out of range."),
                              "503": unavailable, "414": too_long}}},
            "/api/recommendations": {"post": {
                "operationId": "recommendFromFavourites",
                "summary": "Cold start: recommendations for someone not in the data, from a few anime they liked.",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/FavouritesRequest"}}}},
                "responses": {"200": _ok("Recommendations, best first; the liked anime are never among them.",
                                         "FavouritesResponse"),
                              "400": _error_response("Bad JSON, liked not a non-empty list of distinct ids, "
                                                     "or a bad option."),
                              "404": _error_response("A liked anime is not in the model."),
                              "413": _error_response("The body is larger than the server accepts."),
                              "415": _error_response("The body was sent with a Content-Type other than JSON."),
                              "503": unavailable}}},
            "/api/lists/myanimelist": {"post": {
                "operationId": "recommendFromList",
                "summary": "Recommendations from a person's whole MyAnimeList anime list export, scores and statuses "
                           "included. The file serves this one answer: it is never stored or logged.",
                "parameters": [n, *weights, *filters],
                "requestBody": {"required": True, "description": "The export exactly as MyAnimeList's Export page "
                                "gives it (animelist_<time>_-_<id>.xml.gz), or its XML unzipped; lists converted "
                                "from AniList or Kitsu to the same XML work too.",
                                "content": {media: {"schema": {"type": "string", "format": "binary"}}
                                            for media in LIST_MEDIA_TYPES}},
                "responses": {"200": _ok("Recommendations, best first, and the list's best plan-to-watch titles.",
                                         "ListResponse"),
                              "400": _error_response("Not a MyAnimeList anime list export (unreadable, a manga "
                                                     "list, empty, declares a DTD or entities), or a bad option."),
                              "404": _error_response("The catalogue knows none of the anime on the list."),
                              "413": _error_response(
                                  f"The file is larger than any export ({config.list_max_xml_bytes:,} bytes as XML, "
                                  f"{config.list_max_upload_bytes:,} gzipped) or lists over "
                                  f"{config.list_max_entries:,} anime."),
                              "415": _error_response("The body was sent with a Content-Type other than the export's."),
                              "503": unavailable}}},
            "/healthz": {"get": {"operationId": "healthz", "summary": "Liveness: the process answers.",
                                 "responses": {"200": _ok("Alive.", "Health")}}},
            "/readyz": {"get": {"operationId": "readyz", "summary": "Readiness: the model artifacts are loaded.",
                                "responses": {"200": _ok("Ready to recommend.", "Ready"),
                                              "503": {"description": "Not ready; reason says why.",
                                                      "content": {"application/json": {"schema": {
                                                          "$ref": "#/components/schemas/Unavailable"}}}}}}},
            "/api/openapi.json": {"get": {"operationId": "openapi", "summary": "This document.",
                                          "responses": {"200": {"description": "The OpenAPI document.",
                                                                "content": {"application/json": {
                                                                    "schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": _schemas(config, genre, type_schema)},
    }
