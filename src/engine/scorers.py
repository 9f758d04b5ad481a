"""Scorers: one object per signal, each scoring every anime of the model for a batch of profiles.

A scorer is a method (src/models/method.py) over ``Profiles``, built from the trained model's state: its
``score(profiles)`` returns ``Scores``, an (n x catalogue) array, higher is better, plus the evidence its reasons
need. Its ``normalise(values, known)`` puts one profile's scores on a common [0, 1] scale over the candidates
(anime the profile does not have yet), so the hybrid can mix them with weights. Scorers never rank: ranking
(src/engine/ranking.py) cuts the top n. Adding a signal is adding a scorer here, building it in the Recommender
and giving it a weight.

- ``ncf``: the NCF's own score, T · cos(user, anime) + bias; a newcomer's user vector is folded in from the
  favourites by a few gradient steps on the model's objective (embeddings frozen);
- ``item_item``: EASE, x · B, the profile's anime weighted as EASE was fitted;
- ``user``: how many of the most similar users prefer each anime, boosted by the profile's favourite genres;
- ``embedding``: the cosine of each anime to the profile's preferred anime, by the NCF's anime embeddings;
- ``popularity``: how many users of the model have each anime on their list;
- ``features``: the cosine of each anime to the profile's preferred anime by content features (every anime of the
  catalogue, rated or not); ``unrated``: the same for the anime without community ratings only.

Scores cover the whole catalogue; a scorer that knows only the model's (rated) anime gives the others -inf,
which every normalisation turns into 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp

from config.settings import ServingConfig
from src.engine.catalogue import Catalogue
from src.engine.interactions import Interactions, Profiles, row_columns, stored_positions
from src.engine.parallel import by_row_blocks
from src.engine.ranking import top_k
from src.models.ease import ItemWeights
from src.models.method import Method, Scores
from src.store.artifacts import ModelArtifacts, NearestUsers, l2_normalise, write_nearest_users


class Scorer(Method[Profiles], Protocol):
    """A method of the engine: it takes ``Profiles``, its scores cover the catalogue, and it puts them on the
    hybrid's common scale. ``side``: which slider moves its weight ("users", "anime"; None: neither). ``build``
    makes it from a loaded model (None when the model lacks what it needs); SCORERS at the end lists them all."""

    side: ClassVar[str | None]

    @classmethod
    def build(cls, parts: ModelParts) -> Scorer | None: ...

    def normalise(self, values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        """One batch's ``values`` on [0, 1] over each profile's candidates (the anime not in its row of ``known``)."""
        ...


@dataclass
class ModelParts:
    """What the engine's scorers are built from: the loaded model and the indexes the engine made of it."""

    artifacts: ModelArtifacts
    config: ServingConfig
    user_embeddings: np.ndarray  # unit rows
    anime_embeddings: np.ndarray  # unit rows
    content_features: np.ndarray | None  # unit rows, every anime of the catalogue
    interactions: Interactions
    catalogue: Catalogue
    similar_users: int  # how many similar users the model's mix counts
    item_item_values: str  # how EASE's interaction values were made
    built: dict[str, Scorer] = field(default_factory=dict)  # the scorers built so far (the NCF folds a newcomer in)

    @property
    def width(self) -> int:
        return len(self.catalogue)


def over_catalogue(scores: np.ndarray, width: int) -> np.ndarray:
    """Model-wide scores (n x rated anime) padded with -inf to the catalogue's width."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape[1] == width:
        return scores
    return np.hstack([scores, np.full((len(scores), width - scores.shape[1]), -np.inf, np.float32)])


def rows_times(rows: sp.csr_matrix, weights: np.ndarray | sp.spmatrix, rows_per_thread: int = 128) -> np.ndarray:
    """``rows @ weights`` as a dense array; a large batch of sparse rows is split over the cores (exact per row,
    src/engine/parallel.py)."""
    blocks = by_row_blocks(lambda start, stop: _dense(rows[start:stop] @ weights), rows.shape[0], rows_per_thread)
    return blocks[0] if len(blocks) == 1 else np.vstack(blocks)


def _dense(product: Any) -> np.ndarray:
    return product.toarray() if sp.issparse(product) else np.asarray(product)


def rated_only(matrix: sp.csr_matrix, n_rated: int) -> sp.csr_matrix:
    """The columns of the model's anime: a profile's unrated anime are invisible to collaborative scorers."""
    return matrix if matrix.shape[1] == n_rated else sp.csr_matrix(matrix[:, :n_rated])


def l2_normalise_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def candidates_only(values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
    """A float32 copy of ``values`` with each profile's known anime set to -inf."""
    values = np.array(values, dtype=np.float32)
    rows = np.repeat(np.arange(known.shape[0]), np.diff(known.indptr))
    values[rows, known.indices] = -np.inf
    return values


def scale_by_max(values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
    """Clip at 0 and divide each profile's candidates by their maximum: [0, 1], known anime 0."""
    values = np.maximum(candidates_only(values, known), 0.0)
    top = values.max(axis=1, keepdims=True) if values.shape[1] else np.zeros((len(values), 1), np.float32)
    return np.divide(values, top, out=np.zeros_like(values), where=top > 0)


def scale_min_max(values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
    """Each profile's candidates mapped linearly onto [0, 1]; known anime 0."""
    values = candidates_only(values, known)
    finite = np.isfinite(values)
    low = np.where(finite, values, np.inf).min(axis=1, keepdims=True)
    high = np.where(finite, values, -np.inf).max(axis=1, keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    return np.where(finite, (values - np.where(np.isfinite(low), low, 0.0)) / span, 0.0).astype(np.float32)


def relative_probability(logits: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
    """exp(logit − the best candidate's logit): the softmax probability relative to the profile's top anime."""
    logits = candidates_only(logits, known)
    best = logits.max(axis=1, keepdims=True)
    return np.exp(logits - np.where(np.isfinite(best), best, 0.0)).astype(np.float32)


class NCFScorer:
    """The NCF's own score: T · cos(u, a) + bias_a, exactly what the model was trained to rank by."""

    name, takes, side = "ncf", "profiles", "users"

    @classmethod
    def build(cls, parts: ModelParts) -> NCFScorer:
        manifest = parts.artifacts.manifest
        temperature = float(manifest.get("model", {}).get("temperature", 1.0))
        # what an unrated anime weighed in the model's training target (models before it was recorded: 0.5)
        unrated_weight = float(manifest.get("config", {}).get("training", {}).get("unrated_weight", 0.5))
        return cls(parts.user_embeddings, parts.anime_embeddings, parts.artifacts.anime_bias, temperature,
                   parts.config.fold_in_steps, parts.config.fold_in_step_size, parts.width, unrated_weight)

    def __init__(self, user_embeddings: np.ndarray, anime_embeddings: np.ndarray, anime_bias: np.ndarray,
                 temperature: float, fold_in_steps: int, fold_in_step_size: float, width: int,
                 unrated_weight: float = 0.5) -> None:
        """``unrated_weight``: a watched-but-unrated anime's weight in the target the model was trained on
        (training.unrated_weight), which a folded-in list weighs it by too."""
        self.user_embeddings, self.anime_embeddings, self.width = user_embeddings, anime_embeddings, width
        self.anime_bias, self.temperature = anime_bias, float(temperature)
        self.fold_in_steps, self.fold_in_step_size = fold_in_steps, fold_in_step_size
        self.unrated_weight = float(unrated_weight)

    def user_vectors(self, profiles: Profiles) -> np.ndarray:
        """Each profile's unit user vector: its own embedding, or its favourites folded in."""
        if not profiles.is_newcomer:
            return self.user_embeddings[profiles.user_rows]
        if (self, "fold_in") not in profiles.memo:
            profiles.memo[self, "fold_in"] = self.fold_in(rated_only(profiles.known, len(self.anime_embeddings)))
        return profiles.memo[self, "fold_in"]

    def fold_in(self, liked: sp.csr_matrix) -> np.ndarray:
        """Unit user vectors for people known only by their anime: start from the weighted mean of the anime's
        embeddings, then take a few gradient steps on the model's own objective (the weighted mean log softmax of
        the anime) along the unit sphere, with the anime embeddings, bias and T frozen. Each anime weighs what it
        weighed in training: rating / 10, ``unrated_weight`` when stored unrated (0); favourites (10) all alike."""
        weights = sp.csr_matrix(liked, dtype=np.float32, copy=True)
        weights.data = np.where(weights.data > 0, weights.data / 10.0, self.unrated_weight).astype(np.float32)
        weights = sp.diags(1.0 / np.maximum(np.asarray(weights.sum(axis=1)).ravel(), 1e-9)) @ weights
        target = np.asarray(weights @ self.anime_embeddings)
        vectors = l2_normalise_rows(target)  # a profile with no rated anime stays at 0: its scores are all equal
        for _ in range(self.fold_in_steps):
            logits = self.temperature * (vectors @ self.anime_embeddings.T) + self.anime_bias
            probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            gradient = self.temperature * (target - probabilities @ self.anime_embeddings)
            gradient -= (gradient * vectors).sum(axis=1, keepdims=True) * vectors  # tangent to the sphere
            vectors = l2_normalise_rows(vectors + self.fold_in_step_size * gradient)
        return vectors

    def score(self, profiles: Profiles) -> Scores:
        logits = self.temperature * (self.user_vectors(profiles) @ self.anime_embeddings.T) + self.anime_bias
        return Scores(over_catalogue(logits, self.width))

    def normalise(self, values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        return relative_probability(values, known)


class ItemItemScorer:
    """EASE: score = x · B over the anime EASE was fitted on (its support), the profile's anime weighted as EASE
    was fitted (``values``); the other anime get -inf."""

    name, takes, side = "item_item", "profiles", "anime"

    @classmethod
    def build(cls, parts: ModelParts) -> ItemItemScorer | None:
        weights = parts.artifacts.item_weights
        return None if weights is None else cls(weights, parts.item_item_values, parts.width)

    def __init__(self, item_weights: ItemWeights, values: str, width: int) -> None:
        weights = item_weights.weights
        # a sparse row times a dense B needs B in C order (scipy would copy it on every request otherwise)
        self.weights = weights if sp.issparse(weights) else np.ascontiguousarray(weights, dtype=np.float32)
        self.support, self.values, self.width = item_weights.support, values, width
        self._position = np.full(width, -1, np.int64)  # catalogue row -> row of B (-1: not in the support)
        self._position[self.support] = np.arange(len(self.support))

    def pair_weights(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(len(sources) x len(targets)) B[source, target]: how much having each source anime raises each target's
        score (what a reason's "similar to" names); NaN where either is outside EASE's support."""
        rows, columns = self._position[np.asarray(sources)], self._position[np.asarray(targets)]
        pairs = np.full((len(rows), len(columns)), np.nan, np.float32)
        inside_rows, inside_columns = np.flatnonzero(rows >= 0), np.flatnonzero(columns >= 0)
        if len(inside_rows) and len(inside_columns):
            block = (_sparse_block(self.weights, rows[inside_rows], columns[inside_columns])
                     if sp.issparse(self.weights) else self.weights[np.ix_(rows[inside_rows], columns[inside_columns])])
            pairs[np.ix_(inside_rows, inside_columns)] = block
        return pairs

    def profile_rows(self, profiles: Profiles) -> sp.csr_matrix:
        """The profiles' anime as EASE saw users' rows: any = 1; rated = 1 if rated; weighted = rating / 10
        (0.5 if unrated). A favourite counts as a rating of 10."""
        rows = sp.csr_matrix(profiles.known[:, self.support], dtype=np.float32, copy=True)
        rating = rows.data
        if self.values == "any":
            rows.data = np.ones_like(rating)
        elif self.values == "rated":
            rows.data = (rating > 0).astype(np.float32)
        else:
            rows.data = np.where(rating > 0, rating / 10.0, 0.5).astype(np.float32)
        rows.eliminate_zeros()
        return rows

    def score(self, profiles: Profiles) -> Scores:
        scores = rows_times(self.profile_rows(profiles), self.weights)
        if len(self.support) == self.width:
            return Scores(scores.astype(np.float32))
        full = np.full((len(profiles), self.width), -np.inf, np.float32)
        full[:, self.support] = scores
        return Scores(full)

    def normalise(self, values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        return scale_by_max(values, known)


def nearest_user_rows(vectors: np.ndarray, user_embeddings: np.ndarray, k: int,
                      own_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows x k) rows of ``user_embeddings`` nearest each unit vector by cosine, best first, and those cosines;
    ``own_rows``: each vector's own row, never its own neighbour."""
    similarity = vectors @ user_embeddings.T
    if own_rows is not None:
        similarity[np.arange(len(vectors)), own_rows] = -np.inf
    k = min(k, len(user_embeddings) - (0 if own_rows is None else 1))
    if k <= 0:
        empty = np.zeros((len(vectors), 0), np.int64)
        return empty, empty.astype(np.float32)
    nearest = top_k(similarity, k)
    return nearest, np.take_along_axis(similarity, np.maximum(nearest, 0), axis=1)


def nearest_user_table(user_embeddings: np.ndarray, k: int, rows_per_batch: int = 1024) -> NearestUsers:
    """Every user's ``k`` nearest users (unit rows of ``user_embeddings``), by the search serving would run."""
    found = [nearest_user_rows(user_embeddings[start:start + rows_per_batch], user_embeddings, k,
                               np.arange(start, min(start + rows_per_batch, len(user_embeddings))))
             for start in range(0, len(user_embeddings), rows_per_batch)]
    rows = np.concatenate([nearest for nearest, _ in found]) if found else np.zeros((0, 0), np.int64)
    cosines = np.concatenate([similarity for _, similarity in found]) if found else np.zeros((0, 0), np.float32)
    return NearestUsers(rows.astype(np.int64), cosines.astype(np.float32))


def save_nearest_users(folder: Path, k: int) -> None:
    """Each user's ``k`` nearest users, found once from the embeddings exactly as the server normalises them
    (re-read from ``user_embeddings.npy``), so a known user's request reads a row of the table."""
    embeddings = l2_normalise(np.load(folder / "user_embeddings.npy", allow_pickle=False))
    write_nearest_users(folder, nearest_user_table(embeddings, int(k)))


def _sparse_block(matrix: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``matrix[rows][:, columns]`` as a dense array (distinct ``columns``), gathered from the stored entries of
    the rows: what scipy's fancy indexing gives, at a fraction of its cost on a request's path."""
    taken, indptr = stored_positions(matrix, rows)
    position = np.full(matrix.shape[1], -1, np.int64)
    position[columns] = np.arange(len(columns))
    found = position[matrix.indices[taken]]
    hit = found >= 0
    block = np.zeros((len(rows), len(columns)), matrix.dtype)
    block[np.repeat(np.arange(len(rows)), np.diff(indptr))[hit], found[hit]] = matrix.data[taken][hit]
    return block


class SimilarUsersScorer:
    """User-based: how many of the most similar users prefer each anime, boosted by the profile's genres.

    Similar users are the nearest by cosine of the NCF user embeddings (a newcomer's vector is the NCF fold-in);
    a known user's come from the published ``table`` when it holds enough of them.
    Score = count x (1 + genre_boost x share of the anime's genres among the profile's most frequent genres).
    """

    name, takes, side = "user", "profiles", "users"

    @classmethod
    def build(cls, parts: ModelParts) -> SimilarUsersScorer:
        return cls(parts.user_embeddings, parts.built["ncf"], parts.interactions, parts.catalogue, parts.similar_users,
                   parts.config.genre_boost, parts.config.preferred_genres, parts.artifacts.nearest_users)

    def __init__(self, user_embeddings: np.ndarray, ncf: NCFScorer, interactions: Interactions,
                 catalogue: Catalogue, similar_users: int, genre_boost: float, preferred_genres: int,
                 table: NearestUsers | None = None) -> None:
        self.user_embeddings, self.ncf, self.catalogue = user_embeddings, ncf, catalogue
        self.similar_users, self.genre_boost, self.preferred_genres = similar_users, genre_boost, preferred_genres
        self.table = table
        self._preferred = interactions.preferred.sign().astype(np.float32).tocsr()
        self.width = self._preferred.shape[1]

    def nearest_users(self, profiles: Profiles, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows x k) nearest user rows (a user is never their own neighbour) and their cosine similarities."""
        k = k or self.similar_users
        if not profiles.is_newcomer and self.table is not None and k <= self.table.k:
            return self.table.rows[profiles.user_rows, :k], self.table.cosines[profiles.user_rows, :k]
        return nearest_user_rows(self.ncf.user_vectors(profiles), self.user_embeddings, k,
                                 None if profiles.is_newcomer else profiles.user_rows)

    def counts_of(self, profiles: Profiles, anime: np.ndarray) -> tuple[np.ndarray, int]:
        """(how many of the first profile's nearest users prefer each of ``anime``, how many users were asked):
        the reasons' evidence, the counts ``score`` computes for every anime, here only for the few shown."""
        nearest, _ = self.nearest_users(profiles)
        preferred = row_columns(self._preferred, nearest[0][nearest[0] >= 0])  # every anime each of them prefers
        counts = np.bincount(preferred, minlength=self._preferred.shape[1])[np.asarray(anime, dtype=np.int64)]
        return counts.astype(np.int32), nearest.shape[1]

    def score(self, profiles: Profiles) -> Scores:
        nearest, _ = self.nearest_users(profiles)
        rows = np.repeat(np.arange(len(profiles)), nearest.shape[1])
        chosen = nearest.ravel()
        keep = chosen >= 0
        indicator = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], chosen[keep])),
                                  shape=(len(profiles), len(self.user_embeddings)))
        counts = rows_times(indicator, self._preferred)
        values = counts
        if self.genre_boost > 0:
            genres = self.catalogue.top_genres(profiles.preferred, self.preferred_genres)
            values = counts * (1.0 + self.genre_boost * self.catalogue.genre_share(genres)[:, :counts.shape[1]])
        return Scores(values.astype(np.float32), {"similar_user_counts": counts.astype(np.int32),
                                                  "similar_users": nearest.shape[1]})

    def normalise(self, values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        return scale_by_max(values, known)


class EmbeddingScorer:
    """Similar by the NCF's anime embeddings: the cosine of each anime to the sum of the profile's preferred
    anime's embeddings (up to a positive factor, the mean cosine to the preferred anime)."""

    name, takes, side = "embedding", "profiles", "anime"

    @classmethod
    def build(cls, parts: ModelParts) -> EmbeddingScorer:
        return cls(parts.anime_embeddings, parts.width)

    def __init__(self, anime_embeddings: np.ndarray, width: int) -> None:
        self.anime_embeddings, self.width = anime_embeddings, width

    def score(self, profiles: Profiles) -> Scores:
        preferred = rated_only(profiles.preferred, len(self.anime_embeddings))
        profile_vectors = np.asarray(preferred.sign() @ self.anime_embeddings)
        return Scores(over_catalogue(profile_vectors @ self.anime_embeddings.T, self.width))

    def normalise(self, values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        return scale_min_max(values, known)


class PopularityScorer:
    """How many of the model's users have each anime on their list: the same for everyone."""

    name, takes, side = "popularity", "profiles", None

    @classmethod
    def build(cls, parts: ModelParts) -> PopularityScorer:
        return cls(parts.interactions)

    def __init__(self, interactions: Interactions) -> None:
        self.counts = np.bincount(interactions.known.indices, minlength=interactions.n_anime).astype(np.float32)
        self.width = len(self.counts)

    def score(self, profiles: Profiles) -> Scores:
        return Scores(np.broadcast_to(self.counts, (len(profiles), len(self.counts))))

    def normalise(self, values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        return scale_by_max(values, known)


class FeaturesScorer:
    """Content features: the cosine of each anime to the sum of the profile's preferred anime's content features.
    Covers the whole catalogue, so anime nobody rated (and favourites nobody rated) take part too."""

    name, takes, side = "features", "profiles", "anime"

    @classmethod
    def build(cls, parts: ModelParts) -> FeaturesScorer | None:
        return None if parts.content_features is None else cls(parts.content_features)

    def __init__(self, features: np.ndarray) -> None:
        self.features, self.width = features, len(features)

    def profile_vectors(self, profiles: Profiles) -> np.ndarray:
        return np.asarray(profiles.preferred.sign() @ self.features)

    def score(self, profiles: Profiles) -> Scores:
        return Scores((self.profile_vectors(profiles) @ self.features.T).astype(np.float32))

    def normalise(self, values: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        return scale_by_max(values, known)


class UnratedScorer(FeaturesScorer):
    """The content match of the anime without community ratings only (the rated ones get -inf): how never-rated
    titles enter recommendations, with their own weight (``serving.unrated_weight``)."""

    name, takes, side = "unrated", "profiles", None

    @classmethod
    def build(cls, parts: ModelParts) -> UnratedScorer | None:  # type: ignore[override]
        return None if parts.content_features is None else cls(parts.content_features, len(parts.artifacts.anime_ids))

    def __init__(self, features: np.ndarray, n_rated: int) -> None:
        super().__init__(features)
        self.n_rated = n_rated

    def score(self, profiles: Profiles) -> Scores:
        scores = np.full((len(profiles), len(self.features)), -np.inf, np.float32)
        # only the unrated anime's cosines: scoring the rated ones too would be work thrown away
        scores[:, self.n_rated:] = self.profile_vectors(profiles) @ self.features[self.n_rated:].T
        return Scores(scores)


# Every scorer of the engine, in the order the sliders' sides list them; a scorer listed before another may be
# used to build it (the similar users' search folds a newcomer in with the NCF). Adding a scorer: its class above,
# listed here, and its name in config/config.yaml's hybrid.components.
SCORERS: tuple[type[Scorer], ...] = (NCFScorer, SimilarUsersScorer, ItemItemScorer, EmbeddingScorer, FeaturesScorer,
                                     PopularityScorer, UnratedScorer)
COMPONENTS = tuple(scorer.name for scorer in SCORERS)
USER_SIDE = tuple(scorer.name for scorer in SCORERS if scorer.side == "users")
ANIME_SIDE = tuple(scorer.name for scorer in SCORERS if scorer.side == "anime")


def build_scorers(parts: ModelParts) -> dict[str, Scorer]:
    """Every scorer the loaded model can feed, by name."""
    for scorer in SCORERS:
        built = scorer.build(parts)
        if built is not None:
            parts.built[scorer.name] = built
    return parts.built
