"""The model artifact set: the contract between training and serving.

One folder per published model version, written by training as a whole and made current atomically
(``artifacts/model`` points at the current one in ``artifacts/models/``; src/store/registry.py):

| file | content |
|---|---|
| ``model.keras`` | the trained Keras NCF model (not read by serving) |
| ``user_embeddings.npy`` | float32 (n_users, d), rows L2-normalised; row i is user ``user_ids[i]`` |
| ``anime_embeddings.npy`` | float32 (n_anime, d), rows L2-normalised; row j is anime ``anime_ids[j]`` |
| ``anime_bias.npy`` | float32 (n_anime,): the NCF's per-anime bias; its score is T · cos(u, a) + bias[a] |
| ``user_ids.json`` / ``anime_ids.json`` | the id maps: list position = embedding row |
| ``item_weights.npz`` | EASE's B over ``support`` (its anime): the support, and B's CSR arrays when sparse, or the |
| | ``values``, ``regularisation`` and ``dropout`` a dense B was fitted with (derived again at load when its .npy is |
| | left out) |
| ``item_weights.npy`` | a dense B, memory-mapped by the server (one copy for all workers) |
| ``favourites_item_weights.npz``, ``.npy`` | optional: newcomers' own B, when the carve chose other settings for them |
| ``similar_users.npz`` | optional: each user's nearest users by the embeddings (``rows``, ``cosines``; n_users x k) |
| ``anime.json`` | the whole catalogue's metadata: the model's anime first (record j = anime index j), then the rest |
| ``content_features.npy`` | float32 (n_catalogue, f), rows L2-normalised: every catalogue anime's content features |
| ``story.npz`` | the catalogue's synopsis TF-IDF rows (CSR), for "story like ..." reasons |
| ``user_ratings.npy`` | the kept users' interactions: user_index, anime_index, rating (0: not rated), split |
| ``manifest.json`` | data source, counts, the hybrid's chosen settings, config, library versions, version id |

Serving reads only .npy, .npz and .json, so its image needs no parquet library. Everything loads with
``allow_pickle=False``; nothing here is a pickle.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from src.data.files import load_content_features, read_ids, write_ids
from src.data.splits import SPLIT_TEST
from src.errors import ArtifactError
from src.models.ease import INTERACTION_VALUES, ItemWeights, dense_item_weights, derivation_cost, interaction_matrix
from utils.atomic import write_bytes, write_json

ANIME_COLUMNS = [
    "anime_id", "name", "english_name", "genres", "type", "episodes",
    "premiered", "year", "score", "members", "synopsis",
]
# Metadata a newer model carries besides those (src/data/metadata.py); an older artifact set without them gets them
# empty when loaded, so it still serves.
OPTIONAL_ANIME_COLUMNS = {"japanese_name": None, "synonyms": (), "studios": (), "source": None, "age_rating": None,
                          "image_url": None, "aired": None, "unaired": False}
RATING_COLUMNS = ["user_index", "anime_index", "rating", "split"]
RATING_DTYPE = np.dtype([("user_index", "<i4"), ("anime_index", "<i4"), ("rating", "i1"), ("split", "i1")])
# What serving needs; model.keras and history.json are written too but serving never runs the network.
SERVING_FILES = [
    "user_embeddings.npy", "anime_embeddings.npy", "anime_bias.npy", "user_ids.json", "anime_ids.json",
    "item_weights.npz", "anime.json", "user_ratings.npy", "manifest.json", "content_features.npy", "story.npz",
]


@dataclass(frozen=True)
class NearestUsers:
    """Every known user's nearest users, best first, found once when the model is published (similar_users.npz):
    a request then reads a row instead of comparing one user with all of them (1.2 ms at 39,000 users)."""

    rows: np.ndarray  # (n_users x k) int64 user rows, -1 where fewer users exist
    cosines: np.ndarray  # (n_users x k) float32

    @property
    def k(self) -> int:
        return self.rows.shape[1]


@dataclass
class ModelArtifacts:
    user_embeddings: np.ndarray
    anime_embeddings: np.ndarray
    user_ids: np.ndarray
    anime_ids: np.ndarray
    anime: pd.DataFrame
    user_ratings: pd.DataFrame
    manifest: dict[str, Any]
    anime_bias: np.ndarray | None = None  # zeros when not given
    item_weights: ItemWeights | None = field(default=None, repr=False)  # EASE B; none: no item-item term
    favourites_item_weights: ItemWeights | None = field(default=None, repr=False)  # newcomers' own B, if any
    content_features: np.ndarray | None = field(default=None, repr=False)  # (catalogue x f); none: no content path
    story: sp.csr_matrix | None = field(default=None, repr=False)  # synopsis TF-IDF rows of the catalogue
    nearest_users: NearestUsers | None = field(default=None, repr=False)  # none: serving searches every request

    def __post_init__(self) -> None:
        if self.anime_bias is None:
            self.anime_bias = np.zeros(len(self.anime_ids), np.float32)


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def save_embeddings(folder: Path, user_embeddings: np.ndarray, anime_embeddings: np.ndarray,
                    user_ids: np.ndarray, anime_ids: np.ndarray, anime_bias: np.ndarray | None = None) -> None:
    """Write both normalised embedding matrices, the anime bias and the id maps into ``folder``."""
    np.save(folder / "user_embeddings.npy", l2_normalise(user_embeddings), allow_pickle=False)
    np.save(folder / "anime_embeddings.npy", l2_normalise(anime_embeddings), allow_pickle=False)
    bias = np.zeros(len(anime_ids), np.float32) if anime_bias is None else np.asarray(anime_bias, np.float32)
    np.save(folder / "anime_bias.npy", bias, allow_pickle=False)
    write_ids(folder / "user_ids.json", user_ids)
    write_ids(folder / "anime_ids.json", anime_ids)


def save_item_weights(folder: Path, item_weights: ItemWeights | None, name: str = "item_weights.npz") -> None:
    """EASE's B: ``item_weights.npz`` holds the anime it covers (``support``) and, for a sparse B, its three CSR
    arrays. A dense B goes beside it as ``item_weights.npy``, which the server memory-maps, so however many workers
    serve, the machine holds one copy; the npz also records the ``values``, ``regularisation`` and ``dropout`` it
    was fitted with, so that a copy of the model may leave the .npy out and have the server derive it again
    (``drop_derivable_item_weights``: the container image). An npz without support means no item-item term."""
    arrays: dict[str, np.ndarray] = {}
    dense_path = folder / Path(name).with_suffix(".npy")
    if item_weights is not None:
        weights = item_weights.weights
        if sp.issparse(weights):
            csr = sp.csr_matrix(weights, dtype=np.float32)
            arrays = {"data": csr.data, "indices": csr.indices, "indptr": csr.indptr, "shape": np.array(csr.shape)}
        else:  # in C order: a sparse row times B reads B's rows (scipy would copy a Fortran-ordered B per request)
            np.save(dense_path, np.ascontiguousarray(weights, dtype=np.float32), allow_pickle=False)
            if item_weights.values is not None and item_weights.regularisation is not None:
                arrays = {"values": np.array(item_weights.values),
                          "regularisation": np.array(item_weights.regularisation),
                          "dropout": np.array(item_weights.dropout)}
        arrays["support"] = np.asarray(item_weights.support, dtype=np.int64)
    np.savez(folder / name, **arrays)


def drop_derivable_item_weights(folder: str | Path, max_cost: int) -> list[str]:
    """Delete each dense B of the model in ``folder`` that the server can derive again at load for at most
    ``max_cost`` multiply-adds (src/models/ease.py: ``derivation_cost``); return the files deleted.

    A dense B is n² x 4 bytes (166 MB at the embedded sample's 6,444 anime) yet a closed-form function of the
    published training rows and three settings: an image without it is 332 MB smaller and starts ~3.5 s later. Only
    for a copy that is not swapped in under load (the image bakes one version): deriving at a swap takes the
    master seconds of one core that the memory-mapped file does not.
    """
    folder = Path(folder)
    n_users = len(read_ids(folder / "user_ids.json"))
    dropped = []
    for archive in sorted(folder.glob("*item_weights.npz")):
        dense = archive.with_suffix(".npy")
        with archive.open("rb") as handle, np.load(handle, allow_pickle=False) as stored:
            derivable = "values" in stored and "support" in stored
            size = len(stored["support"]) if derivable else 0
        if derivable and dense.is_file() and derivation_cost(n_users, size) <= max_cost:
            dense.unlink()
            dropped.append(dense.name)
    return dropped


def write_nearest_users(folder: Path, table: NearestUsers) -> None:
    np.savez(folder / "similar_users.npz", rows=table.rows, cosines=table.cosines)


def load_nearest_users(path: Path) -> NearestUsers | None:
    if not path.is_file():
        return None
    with path.open("rb") as handle, np.load(handle, allow_pickle=False) as stored:
        return NearestUsers(stored["rows"], stored["cosines"])


def load_item_weights(path: Path, user_ratings: pd.DataFrame, n_users: int, n_anime: int) -> ItemWeights | None:
    """The EASE weights saved by save_item_weights: a dense B is memory-mapped (read-only, shared by processes);
    one left out (drop_derivable_item_weights) is derived again from ``user_ratings``' training rows (every row
    but the test holdout, as training fitted it), in the gunicorn master before the workers fork, so they share
    it too."""
    # our own handle: numpy leaves its file open when a truncated archive fails to parse
    with path.open("rb") as handle, np.load(handle, allow_pickle=False) as stored:
        if "support" not in stored:
            return None
        support = stored["support"]
        if "data" in stored:
            weights: np.ndarray | sp.csr_matrix = sp.csr_matrix(
                (stored["data"], stored["indices"], stored["indptr"]), shape=tuple(stored["shape"]))
        elif "dense" in stored:  # written before B moved beside the npz: loaded whole
            weights = stored["dense"]
        elif "values" in stored and not path.with_suffix(".npy").exists():  # left out of this copy: derived
            dropout = float(stored["dropout"]) if "dropout" in stored else 0.0  # written before EDLAE: EASE
            return _derive_item_weights(path.name, support, str(stored["values"]), float(stored["regularisation"]),
                                        dropout, user_ratings, n_users, n_anime)
        else:
            weights = np.load(path.with_suffix(".npy"), mmap_mode="r", allow_pickle=False)
        return ItemWeights(weights, support)


def _derive_item_weights(name: str, support: np.ndarray, values: str, regularisation: float, dropout: float,
                         user_ratings: pd.DataFrame, n_users: int, n_anime: int) -> ItemWeights:
    if values not in INTERACTION_VALUES:
        raise ArtifactError(f"{name}: values must be one of {', '.join(INTERACTION_VALUES)}, not {values!r}; retrain")
    if not math.isfinite(regularisation) or regularisation <= 0:
        raise ArtifactError(f"{name}: the regularisation must be a positive number, not {regularisation}; retrain")
    if not 0 <= dropout < 1:
        raise ArtifactError(f"{name}: the dropout must be in [0, 1), not {dropout}; retrain")
    if support.ndim != 1 or not np.issubdtype(support.dtype, np.integer) or not _valid_support(support, n_anime):
        raise ArtifactError(f"{name}: support must be increasing anime indices below {n_anime}; retrain")
    known = user_ratings[user_ratings["split"].to_numpy() != SPLIT_TEST]
    return dense_item_weights(interaction_matrix(known, n_users, n_anime, values), support, values, regularisation,
                              dropout)


def with_optional_columns(anime: pd.DataFrame) -> pd.DataFrame:
    """The metadata table with every optional column present (empty where the writer did not have it)."""
    missing = {column: default for column, default in OPTIONAL_ANIME_COLUMNS.items() if column not in anime.columns}
    if not missing:
        return anime
    return anime.assign(**{column: [default] * len(anime) for column, default in missing.items()})


def best_first_order(users: np.ndarray, anime: np.ndarray, values: np.ndarray, n_anime: int) -> np.ndarray:
    """Row order by user, then rating descending, then anime.

    Ratings are small integers by contract, so one argsort over a packed int64 key does it; that is several
    times faster than a lexsort on the tens of millions of rows a full dataset has.
    """
    return order_by(packed_order_key(users, anime, values, n_anime), users, anime, values)


def order_by(key: np.ndarray | None, users: np.ndarray, anime: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.argsort(key) if key is not None else np.lexsort((anime, -values, users))


def packed_order_key(users: np.ndarray, anime: np.ndarray, values: np.ndarray, n_anime: int) -> np.ndarray | None:
    """(user, rating descending, anime) packed in one int64 when the ratings are small integers; else None."""
    if len(values) and np.array_equal(values, np.round(values)) and -16 < values.min() and values.max() < 16:
        return (users * 32 + (15 - values).astype(np.int64)) * n_anime + anime
    return None


def write_tables(folder: Path, anime: pd.DataFrame, user_ratings: pd.DataFrame) -> None:
    """The catalogue's metadata as JSON records and the users' ratings as one structured array."""
    columns = ANIME_COLUMNS + [column for column in OPTIONAL_ANIME_COLUMNS if column in anime.columns]
    records = [{column: _json_value(value) for column, value in zip(columns, row, strict=True)}
               for row in anime[columns].itertuples(index=False, name=None)]
    write_bytes(folder / "anime.json", json.dumps(records, ensure_ascii=False).encode("utf-8"))
    ratings = np.empty(len(user_ratings), dtype=RATING_DTYPE)
    for column in RATING_COLUMNS:
        ratings[column] = user_ratings[column].to_numpy()
    # best first (by user, rating descending, anime), the order serving indexes them in: it then only checks it
    order = best_first_order(ratings["user_index"].astype(np.int64), ratings["anime_index"].astype(np.int64),
                             ratings["rating"].astype(np.float64), int(ratings["anime_index"].max(initial=-1)) + 1)
    np.save(folder / "user_ratings.npy", ratings[order], allow_pickle=False)


def _json_value(value: Any) -> Any:
    """A metadata cell as plain JSON: missing values (None, NaN, pd.NA) become null, arrays become lists."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_value(item) for item in value]
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_anime_table(path: Path) -> pd.DataFrame:
    records = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise ArtifactError(f"{path.name} must be a JSON list of anime records; retrain")
    return with_optional_columns(pd.DataFrame.from_records(records, columns=None if records else ANIME_COLUMNS))


def read_ratings(path: Path) -> pd.DataFrame:
    ratings = np.load(path, allow_pickle=False)
    if ratings.dtype.names is None or set(RATING_COLUMNS) - set(ratings.dtype.names):
        raise ArtifactError(f"{path.name} must hold the columns {', '.join(RATING_COLUMNS)}; retrain")
    return pd.DataFrame({column: ratings[column] for column in RATING_COLUMNS})


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    write_json(folder / "manifest.json", manifest)


def load_model_artifacts(folder: str | Path) -> ModelArtifacts:
    """Load and cross-check a model artifact set; raise ArtifactError saying what is wrong.

    A symlinked folder (the ``artifacts/model`` pointer to the current version, src/store/registry.py) is resolved
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
        anime_bias = np.load(folder / "anime_bias.npy", allow_pickle=False)
        anime = read_anime_table(folder / "anime.json")
        user_ratings = read_ratings(folder / "user_ratings.npy")
        _check_consistency(user_embeddings, anime_embeddings, user_ids, anime_ids, anime, user_ratings)
        weights_of = (folder / "item_weights.npz", folder / "favourites_item_weights.npz")
        item_weights, favourites_weights = (
            load_item_weights(path, user_ratings, len(user_ids), len(anime_ids)) if path.is_file() else None
            for path in weights_of)
        content_features, story = load_content_features(folder)
        nearest_users = load_nearest_users(folder / "similar_users.npz")
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except ArtifactError:
        raise
    except Exception as error:  # any parse failure means a truncated or corrupt file
        raise ArtifactError(f"model artifacts in {folder} are unreadable ({type(error).__name__}: {error}); "
                            "retrain") from error
    if not isinstance(manifest, dict):
        raise ArtifactError("manifest.json must be a JSON object; retrain")
    if problems := (_companion_problems(anime_bias, (item_weights, favourites_weights), len(anime_ids))
                    + _content_problems(content_features, story, len(anime))
                    + _nearest_users_problems(nearest_users, len(user_ids))):
        raise ArtifactError("model artifacts do not match each other: " + "; ".join(problems) + "; retrain")
    return ModelArtifacts(user_embeddings.astype(np.float32, copy=False),
                          anime_embeddings.astype(np.float32, copy=False),
                          user_ids, anime_ids, anime, user_ratings, manifest, anime_bias.astype(np.float32, copy=False),
                          item_weights, favourites_weights, content_features if content_features.shape[1] else None,
                          story if story.shape[0] else None, nearest_users)


def _nearest_users_problems(table: NearestUsers | None, n_users: int) -> list[str]:
    if table is None:
        return []
    rows, cosines = table.rows, table.cosines
    if rows.ndim != 2 or len(rows) != n_users or cosines.shape != rows.shape or rows.shape[1] == 0:
        return [f"similar_users.npz must hold rows and cosines of one line per user ({n_users}), "
                f"not {rows.shape} and {cosines.shape}"]
    if not np.issubdtype(rows.dtype, np.integer) or rows.min() < -1 or rows.max() >= n_users:
        return [f"similar_users.npz rows must be user rows from 0 to {n_users - 1} (-1: none)"]
    if not np.issubdtype(cosines.dtype, np.floating) or not np.isfinite(cosines[rows >= 0]).all():
        return ["similar_users.npz cosines must be finite floats"]
    return []


def _content_problems(features: np.ndarray, story: sp.csr_matrix, n_catalogue: int) -> list[str]:
    problems = []
    if features.ndim != 2 or len(features) != n_catalogue or not np.issubdtype(features.dtype, np.floating):
        problems.append(f"content_features.npy must hold one float row per catalogue anime ({n_catalogue})")
    elif not np.isfinite(features).all():
        problems.append("content_features.npy contains NaN or infinity")
    if story.shape[0] not in (0, n_catalogue):
        problems.append(f"story.npz must hold one row per catalogue anime ({n_catalogue}), not {story.shape[0]}")
    return problems


def _companion_problems(anime_bias: np.ndarray, item_weights: tuple[ItemWeights | None, ...],
                        n_anime: int) -> list[str]:
    problems = []
    if anime_bias.shape != (n_anime,) or not np.issubdtype(anime_bias.dtype, np.floating):
        problems.append(f"anime_bias.npy must hold one float per anime ({n_anime}), not {anime_bias.shape}")
    elif not np.isfinite(anime_bias).all():
        problems.append("anime_bias.npy contains NaN or infinity")
    for weights in item_weights:
        if weights is None:
            continue
        support = weights.support
        if weights.shape != (len(support), len(support)):
            problems.append(f"item_weights.npz weights must be {len(support)} x {len(support)} (its support), "
                            f"not {weights.shape}")
        elif len(support) and not _valid_support(support, n_anime):
            problems.append(f"item_weights.npz support must be increasing anime indices below {n_anime}")
    return problems


def _valid_support(support: np.ndarray, n_anime: int) -> bool:
    """EASE's anime: at least one, increasing, each an anime index of the model."""
    return bool(len(support)) and support.min() >= 0 and support.max() < n_anime and bool(np.all(np.diff(support) > 0))


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
        problems.append(f"user and anime embeddings differ in size ({user_embeddings.shape[1]} vs "
                        f"{anime_embeddings.shape[1]})")
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
        return [f"anime.json lacks columns {missing_columns}"]
    problems = []
    # The catalogue lists the model's anime first, in anime_ids order, then any anime without ratings.
    head = pd.to_numeric(anime["anime_id"].iloc[:len(anime_ids)], errors="coerce").to_numpy()
    if len(anime) < len(anime_ids) or not np.array_equal(head, anime_ids):
        problems.append("anime.json does not start with the anime of anime_ids.json, in that order")
    elif anime["anime_id"].duplicated().any():
        problems.append("anime.json lists an anime more than once")
    # genres are a comma-separated string or a list per anime; a numeric column means some other table
    if pd.api.types.is_numeric_dtype(anime["genres"]):
        problems.append(f"anime.json genres must be text or lists of text, not {anime['genres'].dtype}")
    return problems


def _ratings_problems(user_ratings: pd.DataFrame, user_ids: np.ndarray, anime_ids: np.ndarray) -> list[str]:
    if missing_columns := sorted(set(RATING_COLUMNS) - set(user_ratings.columns)):
        return [f"user_ratings.npy lacks columns {missing_columns}"]
    for column in ("user_index", "anime_index", "rating"):
        if not pd.api.types.is_integer_dtype(user_ratings[column]):
            return [f"user_ratings.npy {column} must hold integers, not {user_ratings[column].dtype}"]
    if len(user_ratings) and (
        user_ratings["user_index"].max() >= len(user_ids) or user_ratings["anime_index"].max() >= len(anime_ids)
        or user_ratings["user_index"].min() < 0 or user_ratings["anime_index"].min() < 0
    ):
        return ["user_ratings.npy refers to users or anime outside the id maps"]
    return []
