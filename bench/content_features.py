"""Content features: build time for the whole 2020 catalogue, and how well the features place anime for users.

    python -m bench.content_features                 # build time (3 runs) + quality, JSON on stdout
    python -m bench.content_features --repeats 1 --no-quality
    python -m bench.content_features --weights '{"type": 0.3}' --output bench/results/content.json

Run from the repository root.

Build: ``read_metadata`` on the embedded sample's 2020 files (17,562 anime; its repairs included), then
``fit_content_features`` with the default settings, timed in this process (wall and CPU seconds, median of the
runs). The budget is 60 s on 2 cores.

Quality, on the embedded 2016 ratings (5,000 users), as a cold start: the rated anime are split at random (seeded)
into 80% "known", 10% validation, 10% test. A user's profile is the mean of the features of the known anime they
rated at or above their own mean rating; each held-out anime is scored by cosine with each profile, and each
user's top 10 of the held-out anime are "recommended". Recall@10 per held-out anime = the share of the users who
rated it (any score) who get it in their top 10, averaged over the held-out anime; "pairs" averages over
(user, anime) pairs instead, so popular anime weigh more. Compared with random order (10 / held-out anime), the
genre block alone, popularity (``members`` from the metadata, the same top 10 for everyone) and the unreduced
sparse blocks (what the dense reduction loses). The default block weights were chosen on the validation carve;
the test carve is reported beside it, and so are the weights before tuning.
Nearest neighbours (by feature cosine) of well-known titles are listed for a look.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from bench.common import machine, now, save_json
from config.paths_config import SAMPLE_DATA_DIR
from config.settings import load_settings
from src.data.content_features import (
    combine_blocks,
    content_blocks,
    content_settings,
    fit_content_features,
)
from src.data.metadata import read_metadata
from tests.test_content_features import nearest  # the content tests' own neighbour list

# The weights before tuning, reported beside the tuned defaults.
UNTUNED_WEIGHTS = {"synopsis": 1.0, "names": 0.8, "genres": 0.7, "studios": 0.4, "type": 0.3, "source": 0.25,
                   "age_rating": 0.25, "era": 0.25, "episodes": 0.2}
SHOWCASE = {1: "Cowboy Bebop", 5: "Cowboy Bebop: The Movie", 20: "Naruto", 21: "One Piece",
            38000: "Kimetsu no Yaiba", 40748: "Jujutsu Kaisen", 1535: "Death Note", 9253: "Steins;Gate"}
K = 10


def read_catalogue(sample_dir: Path = SAMPLE_DATA_DIR) -> pd.DataFrame:
    return read_metadata(sample_dir / "anime.csv.zip", sample_dir / "anime_with_synopsis.csv.zip").table


def build_timing(repeats: int, settings: dict[str, Any], sample_dir: Path = SAMPLE_DATA_DIR) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        anime = read_catalogue(sample_dir)
        read_wall, read_cpu = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        features = fit_content_features(anime, settings)
        runs.append({"read_seconds": read_wall, "read_cpu_seconds": read_cpu,
                     "build_seconds": time.perf_counter() - wall, "build_cpu_seconds": time.process_time() - cpu})
    result = {key: round(statistics.median(run[key] for run in runs), 2) for key in runs[0]}
    result.update(anime=len(anime), dimensions=features.matrix.shape[1], dtype=str(features.matrix.dtype),
                  explained_variance=round(features.explained_variance, 3), runs=len(runs), budget_seconds=60,
                  within_budget=result["build_seconds"] <= 60)
    return result


# ------------------------------------------------------------------------------------------------ quality
class ColdStart:
    """The seeded carve of the rated anime and the users' profiles (see the module docstring)."""

    def __init__(self, anime: pd.DataFrame, ratings: pd.DataFrame, seed: int = 7) -> None:
        rows = pd.Series(np.arange(len(anime)), index=anime["anime_id"].to_numpy())
        ratings = ratings[(ratings["rating"] > 0) & ratings["anime_id"].isin(rows.index)].copy()
        ratings["row"] = rows[ratings["anime_id"]].to_numpy()
        ratings["user"] = np.unique(ratings["user_id"], return_inverse=True)[1]
        rated = np.unique(ratings["row"])
        order = np.random.default_rng(seed).permutation(rated)
        tenth = len(order) // 10
        self.carves = {"test": np.sort(order[:tenth]), "validation": np.sort(order[tenth: 2 * tenth])}
        known = ratings[np.isin(ratings["row"], order[2 * tenth:])]
        mean = known.groupby("user")["rating"].mean()
        self.top = known[known["rating"] >= mean.reindex(known["user"]).to_numpy()]
        self.n_users = int(ratings["user"].max()) + 1
        self.ratings = ratings[np.isin(ratings["user"], self.top["user"].unique())]
        self.anime = anime
        self.rated_anime = len(rated)

    def _profiles(self, features: np.ndarray | sp.csr_matrix) -> np.ndarray | sp.csr_matrix:
        pick = sp.csr_matrix((np.ones(len(self.top), np.float32), (self.top["user"], self.top["row"])),
                             shape=(self.n_users, features.shape[0]))
        return normalize(pick @ features)

    def recall(self, features: np.ndarray | sp.csr_matrix, carve: str) -> dict[str, float]:
        """Recall@10 per held-out anime and over (user, anime) pairs, ranking the carve by profile cosine."""
        held = self.carves[carve]
        features = normalize(features)
        scores = self._profiles(features) @ features[held].T
        scores = scores.toarray() if sp.issparse(scores) else np.asarray(scores)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
        chosen = np.zeros(scores.shape, dtype=bool)
        np.put_along_axis(chosen, top, True, axis=1)
        return self._hits(lambda users, columns: chosen[users, columns], held)

    def popularity(self, carve: str) -> dict[str, float]:
        held = self.carves[carve]
        top = set(held[np.argsort(-self.anime["members"].to_numpy()[held], kind="stable")[:K]])
        return self._hits(lambda users, columns: np.isin(held[columns], list(top)), held)

    def _hits(self, is_chosen, held: np.ndarray) -> dict[str, float]:
        events = self.ratings[np.isin(self.ratings["row"], held)]
        columns = np.searchsorted(held, events["row"].to_numpy())
        hits = is_chosen(events["user"].to_numpy(), columns)
        per_anime = pd.Series(hits).groupby(events["row"].to_numpy()).mean()
        return {"recall_at_10_per_anime": round(float(per_anime.mean()), 4),
                "recall_at_10_pairs": round(float(hits.mean()), 4), "anime": len(per_anime), "pairs": len(hits)}


def quality(anime: pd.DataFrame, settings: dict[str, Any], ratings_path: Path) -> dict[str, Any]:
    cold = ColdStart(anime, pd.read_csv(ratings_path))
    chosen = content_settings(settings)
    blocks = content_blocks(anime, chosen)
    untuned = fit_content_features(anime, {**settings, "weights": UNTUNED_WEIGHTS}).matrix
    features = fit_content_features(anime, chosen).matrix
    result: dict[str, Any] = {"rated_anime": cold.rated_anime, "weights": dict(chosen.weights),
                              "untuned_weights": UNTUNED_WEIGHTS}
    for carve, held in cold.carves.items():
        result[carve] = {
            "held_out_anime": len(held),
            "random": dict.fromkeys(("recall_at_10_per_anime", "recall_at_10_pairs"), round(K / len(held), 4)),
            "popularity": cold.popularity(carve),
            "genres_only": cold.recall(blocks["genres"], carve),
            "content_features": cold.recall(features, carve),
            "content_features_untuned": cold.recall(untuned, carve),
            "unreduced_blocks": cold.recall(combine_blocks(blocks, chosen.weights), carve),
        }
    rows = {anime_id: row for row, anime_id in enumerate(anime["anime_id"])}
    result["nearest"] = {f"{anime_id} {anime['name'].iat[rows[anime_id]]}":
                         [str(anime["name"].iat[j]) for j in nearest(features, rows[anime_id], K)]
                         for anime_id in SHOWCASE if anime_id in rows}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-quality", action="store_true", help="only the build time")
    parser.add_argument("--weights", type=json.loads, default=None, help="block weights to lay over the defaults")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    settings: dict[str, Any] = {"weights": {**load_settings().content.weights, **(args.weights or {})}}
    report: dict[str, Any] = {"benchmark": "content_features", "when": now(), "machine": machine(),
                              "build": build_timing(args.repeats, settings)}
    if not args.no_quality:
        report["quality"] = quality(read_catalogue(), settings, SAMPLE_DATA_DIR / "rating.csv.gz")
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        save_json(args.output, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
