"""Every request the benchmarks send, built from one served model: its user and anime ids, titles, genres, types.

One set of builders, one per endpoint, used two ways:
- throughput (bench/http_load.py, replayed by wrk and locust): ``make_requests``, the weighted API mix ``MIX``
  (hybrid 3, user-based 1, similar anime 3, search 2, favourites 1, ``n=10`` throughout: mostly the cheap
  look-ups a page view makes, with a recommendation in four requests out of ten), written to a requests file;
- the soak (bench/soak.py): ``SoakMix``, the same API requests with random options plus the pages and probes,
  every one expecting 200, and the invalid requests of issue 7, each with the 4xx it must get.

Requests file: one request a line, tab-separated: kind, method, path (with query string), body (POST only, JSON).
"""
from __future__ import annotations

import json
import random
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# An id no MyAnimeList user or anime has; the model cannot know it.
UNKNOWN_ID = 2**62
SEARCH_TERMS = ["a", "no", "bebop", "gundam", "naruto", "kimi", "one", "ra", "love", "sword", "カ"]


@dataclass(frozen=True)
class Request:
    kind: str  # a short label for reports (locust's endpoint name, the soak's tallies)
    method: str
    path: str
    expected: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        """The request as a line of a requests file (its body must be JSON, as the file format says)."""
        return "\t".join([self.kind, self.method, self.path, (self.body or b"").decode("utf-8")]) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Request:
        kind, method, path, body = (line.rstrip("\n").split("\t") + [""])[:4]
        return cls(kind, method, path, body=body.encode("utf-8") if body else None, headers=dict(JSON) if body else {})


@dataclass(frozen=True)
class ServedModel:
    """What requests are drawn from: the model's ids, its titles, and the genres and types its catalogue accepts."""

    user_ids: list[int]
    anime_ids: list[int]
    titles: list[str]
    genres: tuple[str, ...]
    types: tuple[str, ...]

    @classmethod
    def from_folder(cls, model: Path) -> ServedModel:
        """The model artifacts in ``model`` (a model dir such as artifacts/model)."""
        from src.engine.catalogue import Catalogue  # the engine's own reading of genres and types

        user_ids = json.loads((model / "user_ids.json").read_text(encoding="utf-8"))
        anime_ids = json.loads((model / "anime_ids.json").read_text(encoding="utf-8"))
        if (model / "anime.json").is_file():  # the artifacts since serving reads no parquet (src/store/artifacts.py)
            from src.store.artifacts import read_anime_table

            anime = read_anime_table(model / "anime.json")
        else:
            anime = pd.read_parquet(model / "anime.parquet")
        titles = [english or name for name, english in zip(anime["name"], anime["english_name"], strict=True)]
        catalogue = Catalogue(anime, len(anime_ids))  # the model's anime are the first rows of the catalogue
        return cls(user_ids, anime_ids, titles, catalogue.genres, catalogue.types)


# ---------------------------------------------------------------------------------------------------------
# The builders: one per endpoint
# ---------------------------------------------------------------------------------------------------------
def user_recommendations(model: ServedModel, rng: random.Random, kind: str, **query: Any) -> Request:
    user_id = rng.choice(model.user_ids)
    return Request(kind, "GET", f"/api/users/{user_id}/recommendations?{urllib.parse.urlencode(query)}")


def similar_anime(model: ServedModel, rng: random.Random, kind: str, n: int) -> Request:
    return Request(kind, "GET", f"/api/anime/{rng.choice(model.anime_ids)}/similar?n={n}")


def search(kind: str, text: str, limit: int) -> Request:
    return Request(kind, "GET", "/api/anime/search?" + urllib.parse.urlencode({"q": text, "limit": limit}))


def title_piece(model: ServedModel, rng: random.Random) -> str:
    """A 3-7 character piece of a real title, as someone typing in the search box."""
    title = rng.choice(model.titles)
    start = rng.randrange(max(len(title) - 3, 1))
    return title[start:start + rng.randint(3, 7)].strip() or title


def favourites(model: ServedModel, rng: random.Random, kind: str, liked: int, n: int) -> Request:
    """The favourites API with ``liked`` distinct known anime."""
    return json_post(kind, {"liked": rng.sample(model.anime_ids, min(liked, len(model.anime_ids))), "n": n})


def json_post(kind: str, body: Any, expected: int = 200) -> Request:
    return raw_post(kind, json.dumps(body).encode(), JSON, expected)


def raw_post(kind: str, body: bytes, headers: dict[str, str], expected: int = 200) -> Request:
    """A POST to the favourites API (the one JSON endpoint that takes a body)."""
    return Request(kind, "POST", "/api/recommendations", expected, body, headers)


def form_post(kind: str, path: str, fields: dict[str, Any], expected: int = 200) -> Request:
    return Request(kind, "POST", path, expected, urllib.parse.urlencode(fields, doseq=True).encode(), FORM)


# ---------------------------------------------------------------------------------------------------------
# Throughput: the weighted API mix replayed by wrk and locust
# ---------------------------------------------------------------------------------------------------------
THROUGHPUT: dict[str, tuple[int, Callable[[ServedModel, random.Random], Request]]] = {
    "hybrid": (3, lambda model, rng: user_recommendations(model, rng, "hybrid", n=10)),
    "user_based": (1, lambda model, rng: user_recommendations(model, rng, "user_based", n=10, user_weight=1,
                                                               content_weight=0)),
    "similar_anime": (3, lambda model, rng: similar_anime(model, rng, "similar_anime", 10)),
    "search": (2, lambda model, rng: search("search", title_piece(model, rng), 10)),
    "favourites": (1, lambda model, rng: favourites(model, rng, "favourites", rng.randint(3, 5), 10)),
}
MIX = {kind: weight for kind, (weight, _) in THROUGHPUT.items()}


def make_requests(model: Path | ServedModel, count: int, seed: int = 42) -> list[Request]:
    """``count`` random valid requests of the throughput mix for the model in ``model`` (a model dir)."""
    model = model if isinstance(model, ServedModel) else ServedModel.from_folder(model)
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    return [THROUGHPUT[kind][1](model, rng) for kind in kinds]


def write_requests(path: Path, requests: list[Request]) -> Path:
    path.write_text("".join(request.line() for request in requests), encoding="utf-8")
    return path


def read_requests(path: Path) -> list[Request]:
    return [Request.from_line(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---------------------------------------------------------------------------------------------------------
# The soak: valid API requests with random options, pages and probes (200 each), and invalid requests
# ---------------------------------------------------------------------------------------------------------
class SoakMix:
    """Valid requests built from the served model; invalid ones from issue 7's table, each with its own 4xx."""

    def __init__(self, model: ServedModel, valid_share: float = 0.6) -> None:
        self.model, self.valid_share = model, valid_share
        self.valid: list[Callable[[random.Random], Request]] = [
            self._user_recommendations, self._similar, self._search, self._favourites,
            lambda rng: Request("page index", "GET", "/"),
            # the address the user form redirects to (POST / answers 303 with it)
            lambda rng: Request("page user", "GET", f"/users/{rng.choice(model.user_ids)}"),
            lambda rng: Request("page anime", "GET", f"/anime/{rng.choice(model.anime_ids)}"),
            lambda rng: Request("page favourites", "GET", "/favourites?liked=" + ",".join(
                map(str, rng.sample(model.anime_ids, min(2, len(model.anime_ids)))))),
            lambda rng: Request("page search", "GET",
                                "/search?" + urllib.parse.urlencode({"q": rng.choice(SEARCH_TERMS)})),
            lambda rng: Request("probe", "GET", rng.choice(["/healthz", "/readyz"])),
        ]
        self.invalid = invalid_requests(model)

    def pick(self, rng: random.Random) -> Request:
        if rng.random() < self.valid_share:
            return rng.choice(self.valid)(rng)
        return rng.choice(self.invalid)

    def _user_recommendations(self, rng: random.Random) -> Request:
        query: dict[str, Any] = {"n": rng.randint(1, 20)}
        if self.model.genres and rng.random() < 0.3:
            query["genre"] = rng.choice(self.model.genres)
        if self.model.types and rng.random() < 0.3:
            query["type"] = rng.choice(self.model.types)
        if rng.random() < 0.3:
            query["user_weight"], query["content_weight"] = rng.choice([(1, 0), (0, 1), (0.3, 0.7)])
        return user_recommendations(self.model, rng, "api user", **query)

    def _similar(self, rng: random.Random) -> Request:
        return similar_anime(self.model, rng, "api similar", rng.randint(1, 20))

    def _search(self, rng: random.Random) -> Request:
        return search("api search", rng.choice(SEARCH_TERMS), rng.randint(1, 10))

    def _favourites(self, rng: random.Random) -> Request:
        return favourites(self.model, rng, "api favourites", rng.randint(1, 5), rng.randint(1, 20))


def invalid_requests(model: ServedModel) -> list[Request]:
    """Issue 7's invalid requests, each with the status it must get."""
    user = f"/api/users/{model.user_ids[0]}/recommendations"
    anime = model.anime_ids[0]
    return [
        Request("bad id", "GET", "/api/users/abc/recommendations", 400),
        Request("huge id", "GET", f"/api/anime/{2**63}/similar", 400),
        Request("unknown user", "GET", f"/api/users/{UNKNOWN_ID}/recommendations", 404),
        Request("unknown anime", "GET", f"/api/anime/{UNKNOWN_ID}/similar", 404),
        Request("bad n", "GET", f"{user}?n=abc", 400),
        Request("n too large", "GET", f"{user}?n={10**9}", 400),
        Request("NaN weight", "GET", f"{user}?user_weight=nan", 400),
        Request("weights both 0", "GET", f"{user}?user_weight=0&content_weight=0", 400),
        Request("unknown genre", "GET", f"{user}?genre=NoSuchGenre", 400),
        Request("empty search", "GET", "/api/anime/search?q=", 400),
        Request("long search", "GET", "/api/anime/search?q=" + "x" * 2000, 400),
        raw_post("invalid JSON", b'{"liked": [1', JSON, 400),
        raw_post("JSON array", b"[1, 2]", JSON, 400),
        raw_post("wrong content type", json.dumps({"liked": [anime]}).encode(), {"Content-Type": "text/plain"}, 415),
        json_post("empty liked", {"liked": []}, 400),
        json_post("duplicated liked", {"liked": [anime, anime]}, 400),
        json_post("unknown liked", {"liked": [UNKNOWN_ID]}, 404),
        raw_post("oversized body", b'{"liked": [' + b"1, " * 30_000 + b"1]}", JSON, 413),
        form_post("page bad id", "/", {"userID": "<script>alert(1)</script>"}, 400),
        Request("page unknown liked", "GET", f"/favourites?liked={UNKNOWN_ID}", 404),
        Request("page bad option", "GET", f"/anime/{anime}?n=0", 400),
        Request("no such page", "GET", "/no-such-page", 404),
        Request("wrong method", "DELETE", "/api/anime/search?q=a", 405),
    ]
