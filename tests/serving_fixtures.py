"""A tiny hand-made model artifact set whose right answers are known, and the fixtures built on it.

Two clearly separated worlds: six action/sci-fi anime ("group A") and six romance/slice-of-life anime
("group B"), eight users who love group A and eight who love group B. Embeddings point along axis 0 for
group A and axis 1 for group B (plus a little seeded noise), so cosine similarity is ~1 inside a group and
~0 across. tests/conftest.py registers this module, so every test module can use its fixtures by name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from src.data.files import save_content_features
from src.data.splits import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VALIDATION
from src.engine.recommender import Recommender, ServingConfig
from src.models.ease import ItemWeights, fit_item_weights
from src.store.artifacts import (
    NearestUsers,
    save_embeddings,
    save_item_weights,
    write_manifest,
    write_nearest_users,
    write_tables,
)

# (anime_id, name, english_name, genres, type, episodes, premiered, year, score, members, synopsis)
GROUP_A_ANIME = [
    (1, "Cowboy Bebop", "Cowboy Bebop", ["Action", "Sci-Fi", "Space"], "TV", 26, "Spring 1998", 1998, 8.78,
     1_251_960, "In the year 2071, humanity has colonized several of the planets and moons."),
    (5, "Cowboy Bebop: Tengoku no Tobira", "Cowboy Bebop: The Movie", ["Action", "Sci-Fi", "Space"], "Movie", 1,
     None, 2001, 8.39, 273_145, "Another day, another bounty."),
    (6, "Trigun", "Trigun", ["Action", "Sci-Fi", "Adventure"], "TV", 26, "Spring 1998", 1998, 8.24, 558_913,
     "Vash the Stampede is the man with a $$60,000,000,000 bounty on his head."),
    (30, "Shinseiki Evangelion", "Neon Genesis Evangelion", ["Action", "Sci-Fi", "Mecha"], "TV", 26, "Fall 1995",
     1995, 8.32, 1_011_264, "In the year 2015, the world stands on the brink of destruction."),
    (20, "Naruto", "Naruto", ["Action", "Adventure", "Comedy"], "TV", 220, "Fall 2002", 2002, 7.91, 1_830_540,
     "Moments prior to Naruto Uzumaki's birth, a huge demon known as the Kyuubi attacked."),
    (21, "One Piece", "One Piece", ["Action", "Adventure", "Comedy"], "TV", None, "Fall 1999", 1999, 8.52,
     1_352_724, "Gol D. Roger was known as the Pirate King."),
]
GROUP_B_ANIME = [
    (101, "Clannad", "Clannad", ["Romance", "Drama", "Slice of Life"], "TV", 23, "Fall 2007", 2007, 8.0, 1_000_000,
     "Tomoya Okazaki is a delinquent who finds life dull."),
    (102, "Toradora!", "Toradora!", ["Romance", "Comedy"], "TV", 25, "Fall 2008", 2008, 8.11, 1_500_000,
     "Ryuuji Takasu is a gentle high school student with a love for housework."),
    (103, "Kimi ni Todoke", "Kimi ni Todoke: From Me to You", ["Romance", "Slice of Life"], "TV", 25, "Fall 2009",
     2009, 8.0, 600_000, "Sawako Kuronuma has always been misunderstood."),
    (104, "Kimi no Na wa.", "Your Name.", ["Romance", "Drama", "Supernatural"], "Movie", 1, None, 2016, 8.96,
     1_600_000, "Mitsuha Miyamizu, a high school girl, yearns to live the life of a boy in Tokyo."),
    (105, "K-On!", "K-On!", ["Slice of Life", "Comedy", "Music"], "TV", 13, "Spring 2009", 2009, 7.86, 700_000,
     "A fresh high school year always means much to come."),
    (106, "Nana", None, ["Romance", "Drama"], "TV", 47, "Spring 2006", 2006, None, 400_000, None),
]
# Never rated by anyone in the data: found, compared and recommended through their content (tiny_frames(unrated=True)).
UNRATED_ANIME = [
    (38000, "Kimetsu no Yaiba", "Demon Slayer: Kimetsu no Yaiba", ["Action", "Demons", "Supernatural"], "TV", 26,
     "Spring 2019", 2019, 8.62, 1_500_000, "Ever since the death of his father, the burden of supporting the family "
     "has fallen upon Tanjirou Kamado."),
    (40748, "Jujutsu Kaisen", "Jujutsu Kaisen", ["Action", "Demons", "Supernatural"], "TV", 24, "Fall 2020", 2020,
     8.78, 1_200_000, "Idly indulging in baseless paranormal activities with the Occult Club."),
    (42897, "Horimiya", "Horimiya", ["Romance", "Slice of Life"], "TV", 13, "Winter 2021", 2021, 8.26, 800_000,
     "On the surface, the thought of Kyouko Hori and Izumi Miyamura getting along would be the last thing in mind."),
]
UNRATED_IDS = [row[0] for row in UNRATED_ANIME]
STUDIOS = {1: ["Sunrise"], 5: ["Bones"], 38000: ["ufotable"], 40748: ["MAPPA"], 42897: ["CloverWorks"]}
JAPANESE_NAMES = {38000: "鬼滅の刃", 30: "新世紀エヴァンゲリオン"}
GROUP_A_IDS = [row[0] for row in GROUP_A_ANIME]
GROUP_B_IDS = [row[0] for row in GROUP_B_ANIME]
GROUP_A_USERS = [1001 + k for k in range(8)]
GROUP_B_USERS = [2001 + k for k in range(8)]
# The user the tests follow: group A, has rated four group-A anime (one in the test split), one group-B anime
# low, and watched Clannad without rating it; left over: Tengoku no Tobira (5) and Naruto (20) in group A.
TEST_USER = 1001
TEST_USER_RATINGS = {1: 10, 6: 9, 30: 8, 21: 9, 102: 3, 101: 0}
TEST_USER_UNSEEN_A = {5, 20}
EMBEDDING_SIZE = 4
# Every component in the mix, so each one's behaviour shows in the known answers.
TINY_HYBRID = {"weights": {"item_item": 1.0, "ncf": 1.0, "user": 1.0, "embedding": 1.0},
               "favourites_weights": {"item_item": 1.0, "ncf": 0.5, "embedding": 0.5}, "similar_users": 10,
               "item_item": {"values": "any", "regularisation": 10.0, "neighbours": None}}


def tiny_frames(unrated: bool = False) -> dict[str, object]:
    """Every part of the tiny artifact set as arrays and frames (the arguments of write_model_artifacts).

    ``unrated``: the catalogue also lists anime nobody rated (UNRATED_ANIME), known by their content features only.
    """
    rng = np.random.default_rng(7)
    anime_rows = GROUP_A_ANIME + GROUP_B_ANIME
    columns = ["anime_id", "name", "english_name", "genres", "type", "episodes", "premiered", "year", "score",
               "members", "synopsis"]
    anime = pd.DataFrame(anime_rows + (UNRATED_ANIME if unrated else []), columns=columns)
    anime["episodes"] = anime["episodes"].astype("Int32")
    anime["year"] = anime["year"].astype("Int32")
    anime["score"] = anime["score"].astype(np.float32)
    anime["studios"] = [STUDIOS.get(anime_id, []) for anime_id in anime["anime_id"]]
    anime["japanese_name"] = [JAPANESE_NAMES.get(anime_id) for anime_id in anime["anime_id"]]
    anime_ids = anime["anime_id"].to_numpy(np.int64)[:len(anime_rows)]  # the rated ones: the model's anime
    user_ids = np.array(GROUP_A_USERS + GROUP_B_USERS, dtype=np.int64)
    # content features point the same way as the embeddings: group A along axis 0, group B along axis 1
    groups = [0] * len(GROUP_A_ANIME) + [1] * len(GROUP_B_ANIME) + ([0, 0, 1] if unrated else [])
    content_features = _group_vectors(np.random.default_rng(11), groups)

    anime_embeddings = _group_vectors(rng, [0] * len(GROUP_A_ANIME) + [1] * len(GROUP_B_ANIME))
    user_embeddings = _group_vectors(rng, [0] * len(GROUP_A_USERS) + [1] * len(GROUP_B_USERS))
    ratings = pd.DataFrame(_rating_rows(anime_ids, user_ids), columns=["user_index", "anime_index", "rating", "split"])
    ratings = ratings.astype({"user_index": np.int32, "anime_index": np.int32, "rating": np.int8, "split": np.int8})
    # EASE fitted for real on the tiny ratings (what the model may learn from: everything but the test row)
    item_weights = fit_item_weights(ratings[ratings["split"] != SPLIT_TEST], len(user_ids), len(anime_ids),
                                    TINY_HYBRID["item_item"])
    return {"user_embeddings": user_embeddings, "anime_embeddings": anime_embeddings, "user_ids": user_ids,
            "anime_ids": anime_ids, "anime": anime, "user_ratings": ratings,
            "manifest": {"data_source": "tests/serving_fixtures.py", "n_users": len(user_ids),
                         "n_anime": len(anime_ids), "model": {"temperature": 7.0}, "hybrid": TINY_HYBRID},
            "anime_bias": np.zeros(len(anime_ids), np.float32), "item_weights": item_weights,
            "content_features": content_features}


def _group_vectors(rng: np.random.Generator, groups: list[int]) -> np.ndarray:
    vectors = rng.normal(0.0, 0.08, size=(len(groups), EMBEDDING_SIZE))
    vectors[np.arange(len(groups)), groups] += 1.0
    return vectors.astype(np.float32)


def _rating_rows(anime_ids: np.ndarray, user_ids: np.ndarray) -> list[tuple[int, int, int, int]]:
    anime_index = {int(a): j for j, a in enumerate(anime_ids)}
    user_index = {int(u): i for i, u in enumerate(user_ids)}
    rows = [(user_index[TEST_USER], anime_index[a], r, SPLIT_TEST if a == 21 else SPLIT_TRAIN)
            for a, r in TEST_USER_RATINGS.items()]
    for users, own, other in ((GROUP_A_USERS[1:], GROUP_A_IDS, GROUP_B_IDS), (GROUP_B_USERS, GROUP_B_IDS, GROUP_A_IDS)):
        for k, user in enumerate(users):
            for j, anime_id in enumerate(own):
                if j == (k + 3) % len(own):
                    continue  # each user has one anime of their own group left to discover
                # everyone in a group loves its fourth and fifth anime (ids 20/21 and 104/105): clear favourites
                rating = 10 if j in (1, 4) else 7 + (j + k) % 3
                rows.append((user_index[user], anime_index[anime_id], rating,
                             SPLIT_VALIDATION if j == 2 else SPLIT_TRAIN))
            rows.append((user_index[user], anime_index[other[k % len(other)]], 2, SPLIT_TRAIN))
    return rows


def write_model_artifacts(folder: str | Path, user_embeddings: np.ndarray, anime_embeddings: np.ndarray,
                          user_ids: np.ndarray, anime_ids: np.ndarray, anime: pd.DataFrame,
                          user_ratings: pd.DataFrame, manifest: dict[str, Any], anime_bias: np.ndarray | None = None,
                          item_weights: ItemWeights | None = None,
                          content_features: np.ndarray | None = None, story: sp.spmatrix | None = None,
                          favourites_item_weights: ItemWeights | None = None,
                          nearest_users: NearestUsers | None = None) -> None:
    """Write everything serving reads into ``folder`` from its parts, with the store's own writers (training
    writes its model through them too, and adds model.keras); content features default to none (an empty matrix:
    no content path); a nearest-users table given here is written as it is. For tests and benchmarks
    (bench/serving_latency.py) that hand-make an artifact set."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_embeddings(folder, user_embeddings, anime_embeddings, user_ids, anime_ids, anime_bias)
    if nearest_users is not None:
        write_nearest_users(folder, nearest_users)
    save_item_weights(folder, item_weights)
    if favourites_item_weights is not None:
        save_item_weights(folder, favourites_item_weights, "favourites_item_weights.npz")
    save_content_features(folder, np.zeros((len(anime), 0), np.float32) if content_features is None
                          else content_features, story)
    write_tables(folder, anime, user_ratings)
    write_manifest(folder, manifest)


def write_tiny_artifacts(folder: str | Path, unrated: bool = False) -> Path:
    """Write the tiny artifact set into ``folder`` (created if needed) and return it."""
    folder = Path(folder)
    write_model_artifacts(folder, **tiny_frames(unrated))
    return folder


@pytest.fixture(scope="session")
def tiny_artifacts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts root (like ANIME_ARTIFACTS_DIR) whose model/ folder holds the tiny artifact set."""
    root = tmp_path_factory.mktemp("serving-artifacts")
    write_tiny_artifacts(root / "model")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_artifacts_root: Path) -> Path:
    return tiny_artifacts_root / "model"


@pytest.fixture(scope="session")
def serving_config() -> ServingConfig:
    """The defaults of config.yaml, pinned here so a config tweak does not silently change the known answers."""
    return ServingConfig(preference_percentile=75, genre_boost=0.5, preferred_genres=5, fold_in_steps=3,
                         fold_in_step_size=0.2, unrated_weight=0.3, similar_content_weight=0.4, default_n=10, max_n=100,
                         max_liked=50, max_query_length=100, keep_versions=2,
                         franchise_rules=True, seen_franchise_cap=None,
                         list_taste_statuses=("watching", "completed", "on_hold", "dropped"),
                         list_unscored_is_taste=True, list_min_taste_score=4, list_plan_to_watch=5,
                         list_link_titles=10, list_link_min_score=7,
                         candidates_per_user=200, candidates_per_anime=100,
                         list_max_upload_bytes=5 * 2**20, list_max_xml_bytes=20 * 2**20, list_max_entries=20_000)


@pytest.fixture(scope="session")
def catalogue_engine(tmp_path_factory: pytest.TempPathFactory, serving_config: ServingConfig) -> Recommender:
    """The tiny model with a whole catalogue: three anime nobody rated besides the twelve rated ones."""
    return Recommender.from_folder(write_tiny_artifacts(tmp_path_factory.mktemp("catalogue") / "model", unrated=True),
                                   serving_config)


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path, serving_config: ServingConfig) -> Recommender:
    return Recommender.from_folder(tiny_model_dir, serving_config)


@pytest.fixture(scope="session")
def app(tiny_model_dir: Path, serving_config: ServingConfig):
    from application import create_app
    return create_app({"TESTING": True, "ARTIFACTS_DIR": str(tiny_model_dir), "SERVING_CONFIG": serving_config})


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def broken_app(tmp_path_factory: pytest.TempPathFactory):
    """An app whose artifacts do not match each other (one anime id too few)."""
    from application import create_app
    folder = write_tiny_artifacts(tmp_path_factory.mktemp("broken") / "model")
    (folder / "anime_ids.json").write_text("[1, 5, 6]", encoding="utf-8")
    return create_app({"TESTING": True, "ARTIFACTS_DIR": str(folder)})


@pytest.fixture(scope="session")
def missing_app(tmp_path_factory: pytest.TempPathFactory):
    """An app pointed at a folder with no artifacts at all."""
    from application import create_app
    return create_app({"TESTING": True, "ARTIFACTS_DIR": str(tmp_path_factory.mktemp("empty") / "model")})
