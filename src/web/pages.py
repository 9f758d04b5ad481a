"""HTML pages: every result has its own GET address, bookmarkable and shareable.

- ``/`` the user form; ``/users/<id>`` a user's recommendations (weights and filters as query parameters);
  ``/users/random`` one of the loaded model's users, picked at random;
- ``/anime/<id>`` an anime and the anime most similar to it;
- ``/search?q=…&page=…`` title search, pages of 20 with the total;
- ``/favourites?liked=1,20,30`` recommendations from a few anime someone liked (no account);
- ``/import`` recommendations from a person's whole MyAnimeList export, uploaded (never stored: the answer is the
  page the upload returns).

The forms post, and the answer is a redirect to the result's address (``POST /`` with ``userID``, the original
form, still works that way; so does ``GET /?userID=…``). "Show more" links raise ``n`` up to the limit.

A page never shows an error page for something the visitor typed: unknown ids, bad options and empty results
become an inline message on the same page (with the HTTP status a client would expect), worded for people: a
field is named as the form labels it ("Similar users weight", not user_weight), and no message points at the
JSON API.
"""
from __future__ import annotations

import math
import random
import re
import urllib.parse
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from src.engine.catalogue import Filters
from src.engine.personal_lists import ListEntry
from src.engine.validation import RecommendationError, UnknownAnimeError, UnknownUserError
from src.web import params
from src.web.list_import import ImportedList, ListImportError, read_uploaded_list, too_large
from src.web.params import ParameterError, RecommendationParams
from src.web.state import EngineUnavailable, engine_state, get_engine

pages_bp = Blueprint("pages", __name__)

# Each parameter as the pages label it: what a message names.
LABELS = {
    "n": "How many", "user_weight": "Similar users weight", "content_weight": "Similar anime weight",
    "genre": "Genre", "type": "Type", "min_score": "Minimum score", "year_from": "From year", "year_to": "To year",
    "q": "Title", "page": "Page", "liked": "Anime you liked", "user": "User ID", "anime": "Anime ID",
    "include_adult": "Include adult titles",
}
OPTION_FIELDS = ("n", "user_weight", "content_weight", "genre", "type", "min_score", "year_from", "year_to",
                 "include_adult")
OPTIONS_COOKIE = "options"  # "open" or "closed": the options panel as the visitor left it (static/app.js sets it)
ADULT_COOKIE = "include_adult"  # "1": the visitor ticked "Include adult titles"; every page remembers it
ADULT_COOKIE_SECONDS = 365 * 24 * 3600
RESULTS_ANCHOR = "results"  # where a submitted form lands: the results, in view on a phone too
SEARCH_PAGE_SIZE = params.SEARCH_PAGE_SIZE
EMPTY_SEARCH = "Type part of a title, such as “bebop” or “naruto”, then press Search."
POSTER_HOST = "https://cdn.myanimelist.net/"  # the one image host the Content-Security-Policy allows
PLACEHOLDER_COLOURS = 12  # .ph-0 … .ph-11 in static/style.css


@dataclass
class PageResult:
    """What a page shows besides its form: items, or a message saying why there are none."""

    items: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    message_kind: str = "info"  # "info" or "error": styling only
    status: int = 200
    suggest_favourites: bool = False
    suggest_random: bool = False
    option_error: bool = False  # the message is about a field of the options panel: show the panel
    notes: list[str] = field(default_factory=list)  # said besides the results (a repeated pick, a skipped id)
    links: list[tuple[str, str]] = field(default_factory=list)  # (address, text) after the message
    more_url: str | None = None  # "Show more": the same address with a larger n

    def fail(self, status: int, message: str, suggest_favourites: bool = False,
             suggest_random: bool = False) -> PageResult:
        self.status, self.message, self.message_kind = status, message, "error"
        self.suggest_favourites, self.suggest_random = suggest_favourites, suggest_random
        return self


def adult_preference(form: MultiDict) -> bool:
    """Whether adult titles may be shown: the form's ``include_adult`` when it has one, else what the visitor chose
    before (the cookie ``remember_adult_choice`` sets)."""
    return params.include_adult(form, request.cookies.get(ADULT_COOKIE) == "1")


@pages_bp.after_app_request
def remember_adult_choice(response: Any) -> Any:
    """A page request that says ``include_adult`` sets the cookie, so the next pages (and the suggestions box)
    follow the visitor's choice; a value that is not a choice changes nothing."""
    if request.blueprint != "pages":
        return response
    try:
        if "include_adult" not in request.values:
            return response
        chosen = params.include_adult(request.values)
    except (ParameterError, HTTPException):  # not a choice, or a body the request already refused (413)
        return response
    response.set_cookie(ADULT_COOKIE, "1" if chosen else "0", max_age=ADULT_COOKIE_SECONDS, samesite="Lax")
    return response


def _filled(form: MultiDict) -> MultiDict:
    """Form values without the blank ones: an empty field or an "any" choice means "no constraint"."""
    return MultiDict([(key, value) for key, value in form.items(multi=True) if value.strip()])


# ---------------------------------------------------------------------------------------------------------
# What every template knows
# ---------------------------------------------------------------------------------------------------------
def _slider_defaults() -> dict[str, float]:
    state = engine_state()
    sliders = state.recommender.default_weights() if state.recommender is not None else (0.5, 0.5)
    return {"user_weight": round(sliders[0], 2), "content_weight": round(sliders[1], 2)}


@pages_bp.app_context_processor
def _engine_context() -> dict[str, Any]:
    """Every template (error pages included) knows the limits, whether the engine is unavailable, and the model
    version that answers (the footer shows it)."""
    state = engine_state()
    return {"serving": state.config, "unavailable": state.reason,
            "model_version": state.version if state.recommender is not None else None,
            "slider_defaults": _slider_defaults(),
            "user_count": state.recommender.n_users if state.recommender is not None else None}


def _page_context(form: MultiDict, result: PageResult | None = None) -> dict[str, Any]:
    engine = engine_state().recommender
    chosen = [name for name in OPTION_FIELDS
              if name not in ("n", "user_weight", "content_weight", "include_adult") and form.get(name)]
    try:
        adult = adult_preference(form)
    except ParameterError:
        adult = False
    return {"genres": engine.genres if engine else (), "types": engine.types if engine else (), "form": form,
            "options_open": request.cookies.get(OPTIONS_COOKIE) == "open" or bool(result and result.option_error),
            "filters_set": len(chosen), "include_adult": adult}


@pages_bp.app_template_filter("poster_url")
def poster_url(item: dict[str, Any]) -> str | None:
    """The item's poster address when it is one the pages may load (MyAnimeList's CDN, https), else None."""
    url = item.get("image_url")
    return url if isinstance(url, str) and url.startswith(POSTER_HOST) else None


@pages_bp.app_template_filter("initials")
def initials(item: dict[str, Any]) -> str:
    """One or two letters of the shown title for the poster placeholder: "Cowboy Bebop" -> "CB"."""
    words = re.findall(r"\w+", item.get("english_name") or item.get("name") or "")
    if not words:
        return "?"
    letters = words[0][0] + (words[1][0] if len(words) > 1 else "")
    return letters.upper()


@pages_bp.app_template_filter("placeholder_colour")
def placeholder_colour(item: dict[str, Any]) -> str:
    """A CSS class for the placeholder's colour, the same for every anime whose first genre is the same."""
    genres = item.get("genres") or []
    if not genres:
        return "ph-none"
    return f"ph-{zlib.crc32(str(genres[0]).casefold().encode('utf-8')) % PLACEHOLDER_COLOURS}"


@pages_bp.app_template_filter("sentence")
def sentence(text: str) -> str:
    text = str(text or "").strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")) if text else text


# ---------------------------------------------------------------------------------------------------------
# Messages for people
# ---------------------------------------------------------------------------------------------------------
def _shown(value: Any, limit: int = 40) -> str:
    text = " ".join(str(value).split())
    return "“" + (text if len(text) <= limit else text[:limit] + "…") + "”"


def page_wording(error: ParameterError) -> str:
    """The page's message for a parameter problem: the field named as the page labels it, plain words."""
    label = LABELS.get(error.name, error.name)
    rule = error.rule
    if rule == "id" and error.name == "liked":
        return (f"{label} are given by their IDs, whole numbers such as 1, not {_shown(error.value)}: type a title "
                "and choose it from the suggestions.")
    if rule == "id":
        return f"{label} must be a whole number such as 1001, not {_shown(error.value)}."
    if rule == "whole":
        return f"{label} must be a whole number from {error.low:g} to {error.high:g}, not {_shown(error.value)}."
    if rule == "number":
        return f"{label} must be a number from {error.low:g} to {error.high:g}, not {_shown(error.value)}."
    if rule == "both_zero":
        return f"{LABELS['user_weight']} and {LABELS['content_weight']} cannot both be 0: raise either one."
    if rule == "empty_choice":
        return f"{label} must not be empty: choose “Any {label.lower()}” to allow any."
    if rule == "too_many":
        return f"Choose at most {error.high:g} values for {label}."
    if rule == "unknown_choice":
        return f"{label} {_shown(error.value)} is not one we know: choose one from the {label} list."
    if rule == "text_length":
        given = len(error.value) if isinstance(error.value, str) else 0
        return (f"{label} must be {error.low:g} to {error.high:g} characters, such as “bebop”; "
                f"yours has {given:,}.")
    if rule == "count":
        return f"Pick at most {error.high:g} anime, not {error.value}."
    if rule == "boolean":
        return f"{label} is a yes or no choice, not {_shown(error.value)}: tick or untick the box."
    return sentence(_relabel(str(error)))


_API_NAMES = re.compile(r"\b(" + "|".join(sorted((name for name in LABELS if "_" in name), key=len, reverse=True))
                        + r")\b")


def _relabel(text: str) -> str:
    """An engine message with the API's parameter names replaced by the pages' labels (a fallback: the pages
    check what the engine would, so the engine's own messages rarely reach them)."""
    return _API_NAMES.sub(lambda match: LABELS[match.group(1)], text)


def _no_results_message(filters: Filters) -> str:
    if filters.year_from is not None and filters.year_to is not None and filters.year_from > filters.year_to:
        return f"The year range {filters.year_from} to {filters.year_to} is empty: swap the two years."
    if not filters.is_empty():
        return "Nothing matches these filters. Loosen them (fewer genres, a wider year range or a lower minimum score)."
    return "We found nothing to recommend. Try picking a few anime you liked instead."


def _guard(result: PageResult, action: Callable[[PageResult], None],
           unknown_anime: Callable[[UnknownAnimeError], str] | None = None,
           unknown_user: Callable[[UnknownUserError], str] | None = None) -> PageResult:
    """Run ``action`` and turn every problem the visitor can fix into an inline message."""
    try:
        action(result)
    except EngineUnavailable:
        result.status = 503  # the banner of every page already says why
    except UnknownUserError as error:
        message = unknown_user(error) if unknown_user else "We don't know that user ID."
        result.fail(404, message, suggest_favourites=True, suggest_random=True)
    except UnknownAnimeError as error:
        result.fail(404, unknown_anime(error) if unknown_anime else sentence(_relabel(str(error))))
    except ParameterError as error:
        result.fail(400, page_wording(error))
        result.option_error = error.name in OPTION_FIELDS
    except RecommendationError as error:
        result.fail(400, sentence(_relabel(str(error))))
    return result


# ---------------------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------------------
def _number(value: float) -> str:
    return format(value, "g")


def _known(engine) -> params.KnownValues:
    return params.KnownValues(engine.genres, engine.types)


def _option_pairs(options: RecommendationParams, default_n: int) -> list[tuple[str, str]]:
    """The options of a result's address, as short as it can be: n only when not the default, the weights only
    when not both where the sliders start (the model's own mix), blank filters left out."""
    pairs: list[tuple[str, str]] = []
    sliders = _slider_defaults()
    weights = (options.user_weight, options.content_weight)
    if weights != (sliders["user_weight"], sliders["content_weight"]):
        pairs += [(name, _number(value)) for name, value in zip(("user_weight", "content_weight"), weights,
                                                                            strict=True) if value is not None]
    filters = options.filters
    pairs += [("genre", genre) for genre in filters.genres] + [("type", kind) for kind in filters.types]
    pairs += [(name, _number(value)) for name, value in (("min_score", filters.min_score),
                                                          ("year_from", filters.year_from),
                                                          ("year_to", filters.year_to)) if value is not None]
    if filters.include_adult:
        pairs.append(("include_adult", "1"))
    if options.n != default_n:
        pairs.append(("n", str(options.n)))
    return pairs


def _address(path: str, pairs: Iterable[tuple[str, str]], anchor: str | None = RESULTS_ANCHOR) -> str:
    query = urllib.parse.urlencode(list(pairs), safe=",")
    return path + (f"?{query}" if query else "") + (f"#{anchor}" if anchor else "")


def _more_url(form: MultiDict, n: int, shown: int, max_n: int, step: int) -> str | None:
    """"Show more": this address with ``n`` raised by ``step`` (at most ``max_n``), landing on the first new
    item; None when everything there is was shown or ``n`` is at its limit."""
    if shown < n or n >= max_n:
        return None
    pairs = [(key, value) for key, value in form.items(multi=True) if key != "n"]
    return _address(request.path, [*pairs, ("n", str(min(n + step, max_n)))], f"result-{n + 1}")


def _redirect_status() -> int:
    return 303 if request.method == "POST" else 302


# ---------------------------------------------------------------------------------------------------------
# Users
# ---------------------------------------------------------------------------------------------------------
def _unknown_user(user_text: str) -> Callable[[UnknownUserError], str]:
    return lambda error: (f"We don't know that user ID ({user_text.strip()}): only the users in the loaded model "
                          "have recommendations.")


def _example_ids() -> list[int]:
    engine = engine_state().recommender
    # Real ids from the loaded model, so the placeholder is one that works.
    return [int(user_id) for user_id in engine.user_ids[:2]] if engine else []


@pages_bp.route("/", methods=["GET", "POST"])
def index() -> Any:
    """The user form. A user ID (the form posts ``userID``; ``GET /?userID=`` works too) is answered with a
    redirect to that user's address, /users/<id>, with the options as its query; a malformed one, or a bad
    option, with an inline message on this page."""
    source = request.form if request.method == "POST" else request.args
    form = _filled(source)
    user_text = form.get("userID", "")
    result = PageResult()
    target: str | None = None

    def check(result: PageResult) -> None:
        nonlocal target
        engine = get_engine()
        user = params.parse_id(user_text, "user")
        options = params.query_params(form, engine.config, _known(engine), adult_preference(form))
        target = _address(url_for("pages.user", user_id=user), _option_pairs(options, engine.config.default_n))

    if user_text:
        _guard(result, check)
    elif request.method == "POST" or "userID" in source:
        result.fail(400, "Enter a user ID (a whole number such as 1001), or pick a few anime you liked instead.",
                    suggest_favourites=True, suggest_random=True)
    if target is not None:
        return redirect(target, _redirect_status())
    return render_template("index.html", result=result, user_id=user_text, preferred_genres=(),
                           example_ids=_example_ids(), **_page_context(form, result)), result.status


@pages_bp.get("/users/random")
def random_user() -> Any:
    """One of the loaded model's users, picked at random: a way in for someone who has no ID at hand."""
    engine = get_engine()  # 503 page with the reason when nothing is loaded
    user = int(random.choice(engine.user_ids))
    response = redirect(_address(url_for("pages.user", user_id=user), []), 302)
    response.headers["Cache-Control"] = "no-store"
    return response


@pages_bp.get("/users/<user_id>")
def user(user_id: str) -> Any:
    """A user's hybrid recommendations; weights and filters are the query parameters of the JSON API's."""
    form = _filled(request.args)
    result = PageResult()
    preferred_genres: tuple[str, ...] = ()

    def recommend(result: PageResult) -> None:
        nonlocal preferred_genres
        engine = get_engine()
        user = params.parse_id(user_id, "user")
        options = params.query_params(form, engine.config, _known(engine), adult_preference(form))
        result.items = engine.recommend_for_user(user, options.n, options.user_weight, options.content_weight,
                                                 options.filters)
        preferred_genres = engine.preferred_genres(user)
        if not result.items:
            result.message = _no_results_message(options.filters)
            result.suggest_favourites = options.filters.is_empty()
        result.more_url = _more_url(form, options.n, len(result.items), engine.config.max_n, engine.config.default_n)

    _guard(result, recommend, unknown_user=_unknown_user(user_id))
    return render_template("index.html", result=result, user_id=user_id, preferred_genres=preferred_genres,
                           example_ids=_example_ids(), **_page_context(form, result)), result.status


# ---------------------------------------------------------------------------------------------------------
# Anime and search
# ---------------------------------------------------------------------------------------------------------
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
        n, filters = params.similar_params(form, engine.config, _known(engine), adult_preference(form))
        result.items = engine.similar_anime(anime, n, filters)
        if not result.items:
            result.message = _no_results_message(filters)
        result.more_url = _more_url(form, n, len(result.items), engine.config.max_n, engine.config.default_n)

    def unknown(error: UnknownAnimeError) -> str:
        return f"There is no anime {anime_id.strip()} in our catalogue. Search a title instead."

    _guard(result, similar, unknown_anime=unknown)
    return render_template("anime.html", result=result, anime=shown or None, anime_id=anime_id,
                           **_page_context(form, result)), result.status


@pages_bp.get("/search")
def search() -> Any:
    """Title search without JavaScript, pages of 20 with the total (the suggestions box calls the JSON API)."""
    form = _filled(request.args)
    query = request.args.get("q", "")
    result = PageResult()
    paging: dict[str, Any] = {}

    def find(result: PageResult) -> None:
        engine = get_engine()
        text, page = params.search_page_params(form, engine.config)
        adult = adult_preference(form)
        total = engine.search_total(text, adult)
        pages = max(1, math.ceil(total / SEARCH_PAGE_SIZE))
        paging.update(total=total, page=page, pages=pages, first=(page - 1) * SEARCH_PAGE_SIZE + 1)
        if not total:
            result.message = f"No title contains “{text.strip()}”. Try a shorter part of the name."
            return
        if page > pages:
            result.message = (f"Page {page} is past the end: “{text.strip()}” has {pages} "
                              f"page{'s' * (pages > 1)} of titles.")
            result.links.append((_search_url(text, pages), f"Go to page {pages}"))
            return
        result.items = engine.search(text, SEARCH_PAGE_SIZE, (page - 1) * SEARCH_PAGE_SIZE, adult)
        paging["last"] = paging["first"] + len(result.items) - 1

    if query.strip():
        _guard(result, find)
    else:
        result.message = EMPTY_SEARCH
    return render_template("search.html", result=result, query=query, paging=paging, search_url=_search_url,
                           **_page_context(form, result)), result.status


def _search_url(query: str, page: int) -> str:
    return _address(url_for("pages.search"), [("q", query)] + ([("page", str(page))] if page > 1 else []))


# ---------------------------------------------------------------------------------------------------------
# Favourites
# ---------------------------------------------------------------------------------------------------------
def _title(item: dict[str, Any]) -> str:
    return item.get("english_name") or item.get("name") or f"anime {item.get('anime_id')}"


def _known_picks(engine, liked: list[int]) -> tuple[list[int], list[int]]:
    """(the distinct picks the catalogue has, in the order picked; those it does not have)."""
    unique = list(dict.fromkeys(liked))
    unknown = engine.unknown_anime(unique)
    return [anime_id for anime_id in unique if anime_id not in set(unknown)], unknown


def _ids_text(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else "")


@pages_bp.route("/favourites", methods=["GET", "POST"])
def favourites() -> Any:
    """New here? Pick a few anime you liked and get recommendations without an account (no retraining).

    The form posts the picks; the answer is a redirect to /favourites?liked=1,20,30 with the options. A title
    picked twice counts once and the page says so; ids that name no anime are skipped and named."""
    posted = request.method == "POST"
    form = _filled(request.form if posted else request.args)
    liked_texts = form.getlist("liked")
    result = PageResult()
    picked: list[dict[str, Any]] = []
    target: str | None = None

    def check(result: PageResult) -> None:
        """A posted form: everything checked, then a redirect to the address of its result."""
        nonlocal target
        engine = get_engine()
        liked = params.parse_liked_texts(liked_texts, engine.config)
        picked.extend(engine.anime(anime_id) for anime_id in _known_picks(engine, liked)[0])
        options = params.query_params(form, engine.config, _known(engine), adult_preference(form))
        pairs = [("liked", ",".join(map(str, liked))), *_option_pairs(options, engine.config.default_n)]
        target = _address(url_for("pages.favourites"), pairs)

    def recommend(result: PageResult) -> None:
        engine = get_engine()
        liked = params.parse_liked_texts(liked_texts, engine.config)
        known, unknown = _known_picks(engine, liked)
        picked.extend(engine.anime(anime_id) for anime_id in known)
        options = params.query_params(form, engine.config, _known(engine), adult_preference(form))
        if not known:
            result.fail(404, f"We don't know any of the anime you picked ({_ids_text(unknown)}). Type a title and "
                             "choose it from the suggestions.")
            return
        titles = {item["anime_id"]: _title(item) for item in picked}
        result.notes += [f"You picked {titles[anime_id]} more than once: it counts once."
                         for anime_id in known if liked.count(anime_id) > 1]
        if unknown:
            result.notes.append(f"We skipped {_ids_text(unknown)}: no anime we know has "
                                f"{'that ID' if len(unknown) == 1 else 'those IDs'}.")
        result.items = engine.recommend_from_favourites(known, options.n, options.user_weight,
                                                        options.content_weight, options.filters)
        if not result.items:
            result.message = _no_results_message(options.filters)
        result.more_url = _more_url(form, options.n, len(result.items), engine.config.max_n, engine.config.default_n)

    if liked_texts:
        _guard(result, check if posted else recommend)
    elif posted:
        result.fail(400, "Pick at least one anime you liked: type a title and choose it from the suggestions.")
    if target is not None:
        return redirect(target, _redirect_status())
    return render_template("favourites.html", result=result, picked=picked,
                           **_page_context(form, result)), result.status


# ---------------------------------------------------------------------------------------------------------
# A person's own list
# ---------------------------------------------------------------------------------------------------------
STATUS_LABELS = {"watching": "watching", "completed": "completed", "on_hold": "on hold", "dropped": "dropped",
                 "plan_to_watch": "plan to watch"}


@dataclass
class ImportedResult:
    """What the import page shows besides the recommendations: what was read, the plan-to-watch section, the
    shareable link (the top favourites only) and the titles the catalogue does not know."""

    summary: str = ""
    plan_to_watch: list[dict[str, Any]] = field(default_factory=list)
    link: str | None = None
    link_titles: list[str] = field(default_factory=list)
    ignored_titles: list[str] = field(default_factory=list)


def _read_summary(imported: ImportedList, ignored: list[int]) -> str:
    counts = ", ".join(f"{count:,} {STATUS_LABELS[status]}" for status, count in imported.by_status.items() if count)
    known = len(imported.entries) - len(ignored)
    return (f"We read {len(imported.entries):,} anime from your list ({counts}), {imported.scored:,} of them scored; "
            f"{known:,} are in our catalogue.")


def _favourites_link(engine, entries: list[ListEntry], ignored: list[int]) -> tuple[str | None, list[str]]:
    """/favourites?liked=… with the list's best-scored titles the catalogue knows (the ones the person would name as
    favourites: scored at least serving.list_link_min_score, not dropped), at most serving.list_link_titles, and
    their titles: what the link holds, and nothing else."""
    unknown = set(ignored)
    liked = (entry for entry in entries if entry.score >= engine.config.list_link_min_score
             and entry.status not in ("plan_to_watch", "dropped") and entry.anime_id not in unknown)
    scored = sorted(liked, key=lambda entry: -entry.score)  # stable: the list's order among equal scores
    chosen = [entry.anime_id for entry in scored[:engine.config.list_link_titles]]
    if not chosen:
        return None, []
    # A path: static/app.js makes it this site's full address as the visitor sees it (behind a proxy, Flask's own
    # idea of the host and scheme may not be it)
    address = url_for("pages.favourites", liked=",".join(map(str, chosen)))
    return address, [_title(engine.anime(anime_id)) for anime_id in chosen]


@pages_bp.route("/import", methods=["GET", "POST"])
def import_list() -> Any:
    """Bring your own list: the MyAnimeList export (.xml or .xml.gz) uploaded as a form's file, answered on this
    page. The file serves this one answer: it is never stored or logged, and the page is never cached."""
    result = PageResult()
    extra = ImportedResult()
    try:
        form = _filled(request.form)
    except RequestEntityTooLarge:  # the form is read here, so the page can say it with the form to try again
        form = MultiDict()
        result.fail(413, sentence(too_large(engine_state().config)))

    def recommend(result: PageResult) -> None:
        engine = get_engine()
        options = params.query_params(form, engine.config, _known(engine), adult_preference(form))
        upload = request.files.get("list")
        if upload is None or not upload.filename:
            result.fail(400, "Choose your MyAnimeList export file first (the animelist … .xml.gz from MyAnimeList's "
                             "Export page).")
            return
        try:
            imported = read_uploaded_list("", upload.read(), engine.config)
            answer = engine.recommend_from_list(imported.entries, options.n, options.user_weight,
                                                options.content_weight, options.filters)
        except ListImportError as error:
            result.fail(error.status, sentence(str(error)))
            return
        except UnknownAnimeError as error:
            result.fail(404, sentence(str(error)))
            return
        result.items, extra.plan_to_watch = answer["recommendations"], answer["plan_to_watch"]
        extra.summary = _read_summary(imported, answer["ignored"])
        titles = {entry.anime_id: entry.title or f"anime {entry.anime_id}" for entry in imported.entries}
        extra.ignored_titles = [titles[anime_id] for anime_id in answer["ignored"]]
        extra.link, extra.link_titles = _favourites_link(engine, imported.entries, answer["ignored"])
        if not result.items:
            result.message = _no_results_message(options.filters)

    if request.method == "POST" and result.status == 200:
        _guard(result, recommend)
    response = make_response(render_template("import.html", result=result, imported=extra,
                                              **_page_context(form, result)), result.status)
    response.headers["Cache-Control"] = "no-store"  # someone's list is in this answer
    return response
