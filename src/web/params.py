"""Request parameters: text and JSON turned into typed values, shared by the JSON API and the HTML pages.

Every problem raises ``ParameterError`` (an ``InvalidRequestError``): its message names the parameter as the API
spells it, what was wrong and what is accepted, which the API returns as is (400 JSON). It also carries the
parameter's name, the rule broken and the limits, so the pages can say the same in their own words, naming the
field as the form labels it (src/web/pages.py). What the engine also checks (n, weights, the query, the liked
list) is checked by the engine's own functions in src/engine/validation.py; the other limits here are the ones
the OpenAPI document publishes.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from config.settings import ServingConfig
from src.engine import validation
from src.engine.catalogue import Filters
from src.engine.validation import InvalidRequestError

MAX_ID = 2**63 - 1
YEAR_MIN, YEAR_MAX = 1900, 2100
SCORE_MIN, SCORE_MAX = 0.0, 10.0
WEIGHT_MIN, WEIGHT_MAX = 0.0, 1.0
MAX_FILTER_VALUES = 20  # genres or types per request; the catalogue has about 40 genres and 7 types
FILTER_FIELDS = ("genre", "type", "min_score", "year_from", "year_to", "include_adult")
WEIGHT_FIELDS = ("user_weight", "content_weight")
FAVOURITES_FIELDS = ("liked", "n", *WEIGHT_FIELDS, *FILTER_FIELDS)
# include_adult in a query string or form: the last value given counts (a form sends a hidden "0", then "1" when
# its checkbox is ticked)
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})
# ASCII digits only: str.isdigit and int() also accept other scripts' digits, which no id is written in.
_INTEGER = re.compile(r"[0-9]{1,19}", re.ASCII)
_SIGNED_INTEGER = re.compile(r"[+-]?[0-9]{1,19}", re.ASCII)
# float() would also take "nan", "inf" and "1_0"; a plain decimal is all any client needs.
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?", re.ASCII)
SEARCH_PAGE_SIZE = 20  # titles per page of the search page
MAX_SEARCH_PAGE = validation.MAX_OFFSET // SEARCH_PAGE_SIZE + 1


class ParameterError(InvalidRequestError):
    """One parameter was wrong. ``str()`` is the API's message; the other fields let a page word it for people.

    ``rule``: "id" (not an id), "whole" / "number" (not a whole number / number from ``low`` to ``high``),
    "both_zero" (both weights 0), "empty_choice", "too_many" (more than ``high`` values), "unknown_choice" (a
    genre or type the catalogue lacks), "text_length" (``low`` to ``high`` characters), "count" (more than
    ``high`` ids in a list), "boolean" (not true or false), "null" (a JSON option given as null). ``value``: what
    was sent (None when nothing in particular).
    """

    def __init__(self, message: str, name: str, rule: str, value: Any = None, low: float | None = None,
                 high: float | None = None) -> None:
        super().__init__(message)
        self.name, self.rule, self.value, self.low, self.high = name, rule, value, low, high


@dataclass(frozen=True)
class RecommendationParams:
    n: int
    user_weight: float | None  # None: the model's own chosen mix
    content_weight: float | None
    filters: Filters


def parse_id(text: str, what: str, name: str | None = None) -> int:
    """A MyAnimeList id from a URL segment or form field (``name``: the parameter it came in, default ``what``)."""
    text = str(text).strip()
    if not _INTEGER.fullmatch(text) or int(text) > MAX_ID:
        raise ParameterError(f"{what} id must be a whole number such as 1 or 12345, got {validation.quoted(text)}",
                             name or what, "id", text)
    return int(text)


def _whole_problem(name: str, low: int, high: int, value: Any) -> ParameterError:
    return ParameterError(f"{name} must be a whole number from {low} to {high}, got {validation.quoted(value)}",
                          name, "whole", value, low, high)


def _number_problem(name: str, low: float, high: float, value: Any) -> ParameterError:
    return ParameterError(f"{name} must be a number from {low:g} to {high:g}, got {validation.quoted(value)}",
                          name, "number", value, low, high)


def _int_in_range(value: int, name: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise _whole_problem(name, low, high, value)
    return value


def _float_in_range(value: float | int, name: str, low: float, high: float) -> float:
    # Compared before float(): an integer of a few hundred digits (valid JSON) overflows float() otherwise.
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        raise _number_problem(name, low, high, value)
    return float(value)


def _text_int(args: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    text = args.get(name)
    if text is None:
        return None
    if not _SIGNED_INTEGER.fullmatch(text.strip()):
        raise _whole_problem(name, low, high, text)
    return _int_in_range(int(text), name, low, high)


def _text_float(args: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    text = args.get(name)
    if text is None:
        return None
    if not _DECIMAL.fullmatch(text.strip()):
        raise _number_problem(name, low, high, text)
    return _float_in_range(float(text), name, low, high)


def _json_int(body: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    # JSON Schema counts 10.0 as an integer; booleans are not numbers, although Python says they are.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _whole_problem(name, low, high, value)
    return _int_in_range(value, name, low, high)


def _json_float(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise _number_problem(name, low, high, value)
    return _float_in_range(value, name, low, high)


def _text_bool(args: Any, name: str, default: bool) -> bool:
    values = args.getlist(name)
    if not values:
        return default
    text = str(values[-1]).strip().casefold()
    if text not in _TRUE | _FALSE:
        raise ParameterError(f"{name} must be true or false, got {validation.quoted(values[-1])}", name, "boolean",
                             values[-1])
    return text in _TRUE


def _json_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be true or false, got {validation.quoted(value)}", name, "boolean", value)
    return value


def _weights(user_weight: float | None, content_weight: float | None) -> tuple[float | None, float | None]:
    if user_weight == 0 and content_weight == 0:  # each is 0..1 here: only both 0 leaves nothing to rank by
        raise ParameterError("user_weight and content_weight cannot both be 0: raise either one", "user_weight",
                             "both_zero", 0)
    validation.weights(user_weight, content_weight)  # anything else the engine would refuse
    return user_weight, content_weight


@dataclass(frozen=True)
class KnownValues:
    """The genres and types a catalogue has: given, the filters are checked against them here (the pages do),
    rather than by the engine (whose message names the API's parameters)."""

    genres: tuple[str, ...]
    types: tuple[str, ...]


def _choices(name: str, values: list[str], known: tuple[str, ...] | None) -> tuple[str, ...]:
    if any(not value.strip() for value in values):
        raise ParameterError(f"{name} must not be empty: leave it out to allow any {name}", name, "empty_choice")
    if len(values) > MAX_FILTER_VALUES:
        raise ParameterError(f"give at most {MAX_FILTER_VALUES} {name} values", name, "too_many",
                             high=MAX_FILTER_VALUES)
    if known is None:
        return tuple(values)
    lookup = {value.casefold(): value for value in known}
    for value in values:
        if value.strip().casefold() not in lookup:
            raise ParameterError(f"unknown {name} {validation.quoted(value)}: use one of {', '.join(known)}", name,
                                 "unknown_choice", value)
    return tuple(lookup[value.strip().casefold()] for value in values)


def _filters(genres: list[str], types: list[str], min_score: float | None, year_from: int | None,
             year_to: int | None, include_adult: bool, known: KnownValues | None = None) -> Filters:
    genres_given = _choices("genre", genres, known.genres if known else None)
    types_given = _choices("type", types, known.types if known else None)
    # year_from > year_to is an empty range, not an error: OpenAPI cannot express the cross-parameter rule,
    # so a schema-valid request must get a (empty) 200; the pages explain the empty range instead.
    return Filters(genres_given, types_given, year_from, year_to, min_score, include_adult)


def _text_filters(args: Any, known: KnownValues | None, adult_default: bool) -> Filters:
    return _filters(args.getlist("genre"), args.getlist("type"), _text_float(args, "min_score", SCORE_MIN, SCORE_MAX),
                    _text_int(args, "year_from", YEAR_MIN, YEAR_MAX), _text_int(args, "year_to", YEAR_MIN, YEAR_MAX),
                    include_adult(args, adult_default), known)


def include_adult(args: Any, default: bool = False) -> bool:
    """The adult opt-in of a query string or form: ``include_adult`` (true/false, 1/0), else ``default`` (the pages
    pass what the visitor chose before)."""
    return _text_bool(args, "include_adult", default)


def query_params(args: Any, config: ServingConfig, known: KnownValues | None = None,
                 adult_default: bool = False) -> RecommendationParams:
    """n, weights and filters from a query string or form (a werkzeug MultiDict)."""
    if not args:  # most requests: every default, which the checks below would only confirm
        return RecommendationParams(config.default_n, None, None, Filters(include_adult=adult_default))
    n = _text_int(args, "n", 1, config.max_n)
    weights = _weights(_text_float(args, "user_weight", WEIGHT_MIN, WEIGHT_MAX),
                       _text_float(args, "content_weight", WEIGHT_MIN, WEIGHT_MAX))
    filters = _text_filters(args, known, adult_default)
    return RecommendationParams(config.default_n if n is None else n, *weights, filters)


def similar_params(args: Any, config: ServingConfig, known: KnownValues | None = None,
                   adult_default: bool = False) -> tuple[int, Filters]:
    if not args:
        return config.default_n, Filters(include_adult=adult_default)
    n = _text_int(args, "n", 1, config.max_n)
    return (config.default_n if n is None else n), _text_filters(args, known, adult_default)


def check_query(query: Any, config: ServingConfig) -> str:
    """A title search's text: 1 to max_query_length characters (the engine's rule, with the parameter named)."""
    if not isinstance(query, str) or not query or len(query) > config.max_query_length:
        raise ParameterError(validation.query_problem(config), "q", "text_length", query, 1, config.max_query_length)
    return query


def search_params(args: Any, config: ServingConfig) -> tuple[str, int, int, bool]:
    """(query, limit, offset, include_adult) of a title search."""
    query = check_query(args.get("q"), config)
    limit = _text_int(args, "limit", 1, config.max_n)
    offset = _text_int(args, "offset", 0, validation.MAX_OFFSET)
    return query, config.default_n if limit is None else limit, offset or 0, include_adult(args)


def search_page_params(args: Any, config: ServingConfig) -> tuple[str, int]:
    """(query, page) of the search page: pages of SEARCH_PAGE_SIZE titles, the first is 1."""
    query = check_query(args.get("q"), config)
    page = _text_int(args, "page", 1, MAX_SEARCH_PAGE)
    return query, page or 1


def _string_list(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        raise InvalidRequestError(f"{name} must be a string or a list of strings, got {validation.quoted(value)}")
    return values


def favourites_params(body: Any, config: ServingConfig) -> tuple[list[int], RecommendationParams]:
    """The liked anime ids and options of a favourites-based request body (already decoded JSON)."""
    if not isinstance(body, dict):
        raise InvalidRequestError('the body must be a JSON object such as {"liked": [1, 5], "n": 10}')
    if unknown := sorted(set(body) - set(FAVOURITES_FIELDS)):
        raise InvalidRequestError(f"unknown field(s) {', '.join(map(validation.quoted, unknown))}: "
                                  f"allowed are {', '.join(FAVOURITES_FIELDS)}")
    # null is no value the document allows: an option is given or left out (liked, required, says its own rule)
    if nulls := [name for name in FAVOURITES_FIELDS[1:] if name in body and body[name] is None]:
        raise ParameterError(f"{nulls[0]} must not be null: leave it out for the default", nulls[0], "null")
    liked = parse_liked(body.get("liked"), config)
    n = _json_int(body, "n", 1, config.max_n)
    weights = _weights(_json_float(body, "user_weight", WEIGHT_MIN, WEIGHT_MAX),
                       _json_float(body, "content_weight", WEIGHT_MIN, WEIGHT_MAX))
    filters = _filters(_string_list(body, "genre"), _string_list(body, "type"),
                       _json_float(body, "min_score", SCORE_MIN, SCORE_MAX),
                       _json_int(body, "year_from", YEAR_MIN, YEAR_MAX), _json_int(body, "year_to", YEAR_MIN, YEAR_MAX),
                       _json_bool(body, "include_adult"))
    return liked, RecommendationParams(config.default_n if n is None else n, *weights, filters)


def parse_liked(value: Any, config: ServingConfig) -> list[int]:
    """The ``liked`` list of a JSON body: 1 to max_liked distinct anime ids."""
    problem = validation.liked_problem(config)
    if not isinstance(value, list) or not 1 <= len(value) <= config.max_liked:
        raise InvalidRequestError(problem)
    ids = []
    for item in value:
        if isinstance(item, float) and math.isfinite(item) and item.is_integer():
            item = int(item)
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item <= MAX_ID:
            raise InvalidRequestError(f"{problem}; got {validation.quoted(item)}")
        ids.append(item)
    return validation.check_liked(ids, config)


def parse_liked_texts(texts: list[str], config: ServingConfig) -> list[int]:
    """The ``liked`` fields of a page's address or form, as given: each field one id or several separated by
    commas (``liked=1,20,30``); empty parts are skipped. At most max_liked ids, counted before anything is
    parsed. A repeat is kept: the page says so and counts it once (the JSON API refuses it instead)."""
    parts = [part for text in texts for part in text.split(",") if part.strip()]
    if len(parts) > config.max_liked:
        raise ParameterError(f"pick at most {config.max_liked} anime, not {len(parts)}", "liked", "count",
                             len(parts), high=config.max_liked)
    return [parse_id(part, "anime", "liked") for part in parts]
