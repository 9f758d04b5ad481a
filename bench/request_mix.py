"""The HTTP endpoint mix: random valid requests drawn from the model artifacts, shared by wrk and locust.

One request per line, tab-separated: kind, method, path (with query string), JSON body (POST only).
Mix (weights): hybrid 3, user-based 1, similar anime 3, search 2, favourites 1, i.e. mostly the cheap
look-ups a page view makes, with a recommendation in four requests out of ten.
"""
from __future__ import annotations

import json
import random
import urllib.parse
from pathlib import Path

import pandas as pd

MIX = {"hybrid": 3, "user_based": 1, "similar_anime": 3, "search": 2, "favourites": 1}


def make_requests(artifacts: Path, count: int, seed: int = 42) -> list[tuple[str, str, str, str]]:
    """``count`` random valid requests (kind, method, path, body) for the model in ``artifacts``."""
    rng = random.Random(seed)
    user_ids = json.loads((artifacts / "user_ids.json").read_text(encoding="utf-8"))
    anime_ids = json.loads((artifacts / "anime_ids.json").read_text(encoding="utf-8"))
    anime = pd.read_parquet(artifacts / "anime.parquet", columns=["name", "english_name"])
    titles = [english or name for name, english in zip(anime["name"], anime["english_name"])]

    def query() -> str:
        """A 3-7 character piece of a real title, as someone typing in the search box."""
        title = rng.choice(titles)
        start = rng.randrange(max(len(title) - 3, 1))
        return title[start:start + rng.randint(3, 7)].strip() or title

    builders = {
        "hybrid": lambda: ("GET", f"/api/users/{rng.choice(user_ids)}/recommendations?n=10", ""),
        "user_based": lambda: ("GET", f"/api/users/{rng.choice(user_ids)}/recommendations?n=10&user_weight=1&content_weight=0", ""),
        "similar_anime": lambda: ("GET", f"/api/anime/{rng.choice(anime_ids)}/similar?n=10", ""),
        "search": lambda: ("GET", "/api/anime/search?" + urllib.parse.urlencode({"q": query(), "limit": 10}), ""),
        "favourites": lambda: ("POST", "/api/recommendations",
                               json.dumps({"liked": rng.sample(anime_ids, rng.randint(3, 5)), "n": 10})),
    }
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    return [(kind, *builders[kind]()) for kind in kinds]


def write_requests(path: Path, requests: list[tuple[str, str, str, str]]) -> Path:
    path.write_text("".join("\t".join(request) + "\n" for request in requests), encoding="utf-8")
    return path


def read_requests(path: Path) -> list[tuple[str, str, str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [tuple((line.split("\t") + [""])[:4]) for line in lines if line]
