"""The model artifact set: the contract between training and serving.

One folder per published model version, written by training as a whole and made current atomically
(``artifacts/model`` points at the current one in ``artifacts/models/``; src/model_registry.py):

| file | content |
|---|---|
| ``model.keras`` | the trained Keras NCF model |
| ``user_embeddings.npy`` | float32 (n_users, d), rows L2-normalised; row i is user ``user_ids[i]`` |
| ``anime_embeddings.npy`` | float32 (n_anime, d), rows L2-normalised; row j is anime ``anime_ids[j]`` |
| ``user_ids.json`` / ``anime_ids.json`` | the id maps: list position = embedding row |
| ``anime.parquet`` | anime metadata, row j describes anime index j (same order as ``anime_ids``) |
| ``user_ratings.parquet`` | every known interaction of the kept users: ``user_index``, ``anime_index``, ``rating`` (1..10, 0 = watched or listed but not rated), ``split`` (see ``SPLIT_*``) |
| ``manifest.json`` | data source, counts, config, library versions, timestamp |

Everything loads with ``allow_pickle=False``; nothing here is a pickle.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from src.errors import ArtifactError
from utils.atomic import write_json

SPLIT_TRAIN = 0
SPLIT_VALIDATION = 1
SPLIT_TEST = 2

ANIME_COLUMNS = [
    "anime_id", "name", "english_name", "genres", "type", "episodes",
    "premiered", "year", "score", "members", "synopsis",
]
RATING_COLUMNS = ["user_index", "anime_index", "rating", "split"]
# What serving needs; model.keras is written too but serving never runs the network.
_MAX_ID = 2**63 - 1
SERVING_FILES = [
    "user_embeddings.npy", "anime_embeddings.npy", "user_ids.json",
    "anime_ids.json", "anime.parquet", "user_ratings.parquet", "manifest.json",
]


@dataclass
class ModelArtifacts:
    user_embeddings: np.ndarray
    anime_embeddings: np.ndarray
    user_ids: np.ndarray
    anime_ids: np.ndarray
    anime: pd.DataFrame
    user_ratings: pd.DataFrame
    manifest: dict[str, Any]


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def write_ids(path: Path, ids: np.ndarray) -> None:
    path.write_text(json.dumps([int(i) for i in ids]), encoding="utf-8")


def read_ids(path: Path) -> np.ndarray:
    ids = json.loads(path.read_text(encoding="utf-8"))
    # bool is an int to Python, and ids past int64 would overflow the array below
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= _MAX_ID
                                            for i in ids):
        raise ArtifactError(f"{path.name} must be a JSON list of integer ids from 0 to {_MAX_ID}; retrain")
    return np.asarray(ids, dtype=np.int64)


def save_embeddings(folder: Path, user_embeddings: np.ndarray, anime_embeddings: np.ndarray,
                    user_ids: np.ndarray, anime_ids: np.ndarray) -> None:
    """Write both normalised embedding matrices and their id maps into ``folder``."""
    np.save(folder / "user_embeddings.npy", l2_normalise(user_embeddings), allow_pickle=False)
    np.save(folder / "anime_embeddings.npy", l2_normalise(anime_embeddings), allow_pickle=False)
    write_ids(folder / "user_ids.json", user_ids)
    write_ids(folder / "anime_ids.json", anime_ids)


def write_tables(folder: Path, anime: pd.DataFrame, user_ratings: pd.DataFrame) -> None:
    """The anime metadata and the users' ratings, in the artifact layout."""
    anime[ANIME_COLUMNS].to_parquet(folder / "anime.parquet", index=False)
    user_ratings[RATING_COLUMNS].to_parquet(folder / "user_ratings.parquet", index=False)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    write_json(folder / "manifest.json", manifest)


def write_model_artifacts(folder: str | Path, user_embeddings: np.ndarray, anime_embeddings: np.ndarray,
                          user_ids: np.ndarray, anime_ids: np.ndarray, anime: pd.DataFrame,
                          user_ratings: pd.DataFrame, manifest: dict[str, Any]) -> None:
    """Write everything serving reads into ``folder`` (training adds model.keras beside it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_embeddings(folder, user_embeddings, anime_embeddings, user_ids, anime_ids)
    write_tables(folder, anime, user_ratings)
    write_manifest(folder, manifest)


def load_model_artifacts(folder: str | Path) -> ModelArtifacts:
    """Load and cross-check a model artifact set; raise ArtifactError saying what is wrong.

    A symlinked folder (the ``artifacts/model`` pointer to the current version, src/model_registry.py) is resolved
    once, so every file comes from the same version even if another is published meanwhile.
    """
    folder = Path(folder)
    if folder.is_symlink():
        folder = Path(os.path.realpath(folder))
    if not folder.is_dir():
        raise ArtifactError(f"no model artifacts at {folder}: run `python pipeline/training_pipeline.py` first")
    missing = [name for name in SERVING_FILES if not (folder / name).is_file()]
    if missing:
        raise ArtifactError(f"model artifacts in {folder} are incomplete, missing {', '.join(missing)}: retrain")
    try:
        user_embeddings = np.load(folder / "user_embeddings.npy", allow_pickle=False)
        anime_embeddings = np.load(folder / "anime_embeddings.npy", allow_pickle=False)
        user_ids = read_ids(folder / "user_ids.json")
        anime_ids = read_ids(folder / "anime_ids.json")
        anime = pd.read_parquet(folder / "anime.parquet")
        user_ratings = pd.read_parquet(folder / "user_ratings.parquet")
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except ArtifactError:
        raise
    except Exception as error:  # any parse failure means a truncated or corrupt file
        raise ArtifactError(f"model artifacts in {folder} are unreadable ({type(error).__name__}: {error}); retrain") from error
    if not isinstance(manifest, dict):
        raise ArtifactError("manifest.json must be a JSON object; retrain")
    _check_consistency(user_embeddings, anime_embeddings, user_ids, anime_ids, anime, user_ratings)
    return ModelArtifacts(user_embeddings.astype(np.float32, copy=False), anime_embeddings.astype(np.float32, copy=False),
                          user_ids, anime_ids, anime, user_ratings, manifest)


def _check_consistency(user_embeddings: np.ndarray, anime_embeddings: np.ndarray, user_ids: np.ndarray,
                       anime_ids: np.ndarray, anime: pd.DataFrame, user_ratings: pd.DataFrame) -> None:
    problems = (_embedding_problems(user_embeddings, anime_embeddings, user_ids, anime_ids)
                + _anime_table_problems(anime, anime_ids) + _ratings_problems(user_ratings, user_ids, anime_ids))
    if len(user_ids) == 0 or len(anime_ids) == 0:
        problems.append("the model has no users or no anime")
    if problems:
        raise ArtifactError("model artifacts do not match each other: " + "; ".join(problems) + "; retrain")


def _embedding_problems(user_embeddings: np.ndarray, anime_embeddings: np.ndarray, user_ids: np.ndarray,
                        anime_ids: np.ndarray) -> list[str]:
    matrices = (("user", user_embeddings, user_ids), ("anime", anime_embeddings, anime_ids))
    # Shape and type first: the count and finiteness checks below assume real-valued matrices.
    for name, matrix, _ in matrices:
        if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
            return [f"{name}_embeddings.npy must be a 2-dimensional float matrix, not {matrix.ndim}-dimensional "
                    f"{matrix.dtype}"]
    problems = []
    if user_embeddings.shape[1] != anime_embeddings.shape[1]:
        problems.append(f"user and anime embeddings differ in size ({user_embeddings.shape[1]} vs {anime_embeddings.shape[1]})")
    elif user_embeddings.shape[1] == 0:
        problems.append("the embeddings have no columns")
    for name, matrix, ids in matrices:
        if len(matrix) != len(ids):
            problems.append(f"{len(matrix)} {name} embeddings but {len(ids)} {name} ids")
        if matrix.size and not np.isfinite(matrix).all():
            problems.append(f"{name} embeddings contain NaN or infinity")
    return problems


def _anime_table_problems(anime: pd.DataFrame, anime_ids: np.ndarray) -> list[str]:
    if missing_columns := sorted(set(ANIME_COLUMNS) - set(anime.columns)):
        return [f"anime.parquet lacks columns {missing_columns}"]
    problems = []
    if len(anime) != len(anime_ids) or (len(anime) and not np.array_equal(anime["anime_id"].to_numpy(), anime_ids)):
        problems.append("anime.parquet rows do not match anime_ids.json")
    # genres are a comma-separated string or a list per anime; a numeric column means some other table
    if pd.api.types.is_numeric_dtype(anime["genres"]):
        problems.append(f"anime.parquet genres must be text or lists of text, not {anime['genres'].dtype}")
    return problems


def _ratings_problems(user_ratings: pd.DataFrame, user_ids: np.ndarray, anime_ids: np.ndarray) -> list[str]:
    if missing_columns := sorted(set(RATING_COLUMNS) - set(user_ratings.columns)):
        return [f"user_ratings.parquet lacks columns {missing_columns}"]
    for column in ("user_index", "anime_index", "rating"):
        if not pd.api.types.is_integer_dtype(user_ratings[column]):
            return [f"user_ratings.parquet {column} must hold integers, not {user_ratings[column].dtype}"]
    if len(user_ratings) and (
        user_ratings["user_index"].max() >= len(user_ids) or user_ratings["anime_index"].max() >= len(anime_ids)
        or user_ratings["user_index"].min() < 0 or user_ratings["anime_index"].min() < 0
    ):
        return ["user_ratings.parquet refers to users or anime outside the id maps"]
    return []
