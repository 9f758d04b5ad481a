"""Offline evaluation: rank the whole catalogue for every held-out user and score the top k.

Protocol
--------
For each user ``u`` with held-out ratings:

* ``T_u`` (relevant set) = anime of ``u`` with ``split == SPLIT_TEST``: a per-user 20 % of the anime ``u`` rated.
* ``K_u`` (known set) = every other row of ``u`` (train and validation, unrated ``rating == 0`` rows included).
  A recommender would never suggest something the user already has on their list, so ``K_u`` is excluded
  from the ranking (its scores are set to ``-inf``).
* The scorer gives every anime a score; ``L_u = (l_1, ..., l_k)`` are the k best anime not in ``K_u``,
  best first. ``rel_i = 1`` if ``l_i`` is in ``T_u``, else 0 (binary relevance).

Metrics, with ``U`` the evaluated test users and ``n_anime`` the catalogue size::

    HR@k       = mean_u 1[ sum_i rel_i > 0 ]
    Recall@k   = mean_u sum_i rel_i / min(k, |T_u|)
    NDCG@k     = mean_u DCG_u / IDCG_u,   DCG_u  = sum_{i=1..k} rel_i / log2(i + 1)
                                          IDCG_u = sum_{i=1..min(k, |T_u|)} 1 / log2(i + 1)
    Coverage@k = | union_u L_u | / n_anime
    MeanPopRank@k = sum_u sum_{j in L_u} pop_rank(j) / sum_u |L_u|

Recall is truncated at ``min(k, |T_u|)`` so a perfect list scores 1 even for users with more than k held-out
anime. ``pop_rank(j)`` is the rank of anime ``j`` by number of users with a training interaction with it
(1 = most interacted; tied anime share their average rank); a low mean popularity rank means the method mostly
recommends blockbusters.

Scorers
-------
Any callable ``score_fn(user_indices: np.ndarray) -> np.ndarray`` of shape ``(len(user_indices), n_anime)``
plugs into :func:`evaluate_scorer`; higher is better, NaN counts as "never recommend". Baselines here:
popularity, item-kNN and (when the optional ``implicit`` package is installed) ALS. Hooks for the model:
:func:`embedding_scorer` (the NCF "direct" cosine score) and :func:`engine_scorers` (any object with
``score_catalogue(user_index, method)``, i.e. the serving engine).
"""
from __future__ import annotations

import dataclasses
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata

from src.artifacts import SPLIT_TEST, ModelArtifacts, l2_normalise
from src.errors import UserError
from src.logger import get_logger
from utils.atomic import TEMP_MARKER, write_json

logger = get_logger(__name__)

ScoreFn = Callable[[np.ndarray], np.ndarray]

# Keys of the per-method result dictionaries, in report order.
RANKING_METRICS = ("hr", "recall", "ndcg")
METRIC_LABELS = {
    "hr": "HR@{k}", "recall": "Recall@{k}", "ndcg": "NDCG@{k}", "coverage": "Coverage@{k}",
    "mean_popularity_rank": "Mean popularity rank", "users": "Users",
}
REPORT_FILES = {"metrics": "metrics.json", "markdown": "evaluation.md", "chart": "chart.png"}


# ---------------------------------------------------------------------------------------------------------------
# Metric functions for one user: small, pure, the formulas of the module docstring.
# ---------------------------------------------------------------------------------------------------------------

def _relevance(ranked_items: Sequence[int] | np.ndarray, relevant_items: Iterable[int], k: int) -> tuple[list[int], int]:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevant = {int(item) for item in relevant_items}
    if not relevant:
        raise ValueError("no relevant items: the metric is undefined for this user")
    return [int(int(item) in relevant) for item in list(ranked_items)[:k]], len(relevant)


def hit_rate_at_k(ranked_items: Sequence[int] | np.ndarray, relevant_items: Iterable[int], k: int) -> float:
    """HR@k = 1 if any of the first k ranked items is relevant, else 0."""
    rel, _ = _relevance(ranked_items, relevant_items, k)
    return float(any(rel))


def recall_at_k(ranked_items: Sequence[int] | np.ndarray, relevant_items: Iterable[int], k: int) -> float:
    """Recall@k = |first k ranked items ∩ relevant| / min(k, |relevant|)."""
    rel, n_relevant = _relevance(ranked_items, relevant_items, k)
    return sum(rel) / min(k, n_relevant)


def ndcg_at_k(ranked_items: Sequence[int] | np.ndarray, relevant_items: Iterable[int], k: int) -> float:
    """NDCG@k = DCG/IDCG, DCG = sum_i rel_i / log2(i + 1) over positions i = 1..k, IDCG over min(k, |relevant|) hits."""
    rel, n_relevant = _relevance(ranked_items, relevant_items, k)
    dcg = sum(r / np.log2(position + 1) for position, r in enumerate(rel, start=1))
    idcg = sum(1 / np.log2(position + 1) for position in range(1, min(k, n_relevant) + 1))
    return float(dcg / idcg)


def catalogue_coverage(recommendations: Iterable[Iterable[int]], n_anime: int) -> float:
    """Coverage = |union of all recommendation lists| / n_anime (negative entries are padding, ignored)."""
    recommended = {int(item) for items in recommendations for item in items if int(item) >= 0}
    return len(recommended) / n_anime


def mean_popularity_rank(recommendations: Iterable[Iterable[int]], popularity_rank: np.ndarray) -> float:
    """Mean of pop_rank(j) over every recommended (user, anime j) pair; NaN when nothing was recommended."""
    ranks = [popularity_rank[int(item)] for items in recommendations for item in items if int(item) >= 0]
    return float(np.mean(ranks)) if ranks else float("nan")


def popularity_ranks(train_interactions: pd.DataFrame, n_anime: int) -> np.ndarray:
    """pop_rank per anime index: 1 = most users with a training interaction; ties share their average rank."""
    counts = interaction_counts(train_interactions, n_anime)
    return rankdata(-counts, method="average")


def interaction_counts(interactions: pd.DataFrame, n_anime: int) -> np.ndarray:
    """Number of distinct users with at least one row for each anime index."""
    pairs = interactions[["user_index", "anime_index"]].drop_duplicates()
    return np.bincount(pairs["anime_index"].to_numpy(np.int64), minlength=n_anime)[:n_anime]


# ---------------------------------------------------------------------------------------------------------------
# Vectorised ranking and metrics over a batch of users.
# ---------------------------------------------------------------------------------------------------------------

def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def batch_metrics(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """HR, Recall and NDCG per user from a (users x <=k) boolean hit matrix and each user's |T_u| (>= 1)."""
    hits = hits.astype(np.float64)
    n_hits = hits.sum(axis=1)
    ideal_hits = np.minimum(k, n_relevant)
    discounts = _discounts(k)
    ideal_dcg = np.cumsum(discounts)[ideal_hits - 1]
    return {
        "hr": (n_hits > 0).astype(np.float64),
        "recall": n_hits / ideal_hits,
        "ndcg": hits @ discounts[:hits.shape[1]] / ideal_dcg,
    }


def top_k_items(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first; -1 where fewer than k anime score above -inf.

    Ties are broken by lower anime index, so rankings do not depend on argpartition's internal order.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    k_available = min(k, scores.shape[1])
    kth_best = -np.partition(-scores, k_available - 1, axis=1)[:, k_available - 1:k_available]
    # argpartition would pick arbitrary items among those tied with the k-th best score: take the strictly
    # better ones plus the lowest-index tied ones, exactly k_available per row.
    above, tied = scores > kth_best, scores == kth_best
    still_needed = k_available - above.sum(axis=1)
    selected = above | tied
    crowded = np.flatnonzero(tied.sum(axis=1) > still_needed)  # usually only rows with many equal scores
    if len(crowded):
        keep = np.cumsum(tied[crowded], axis=1) <= still_needed[crowded, None]
        selected[crowded] = above[crowded] | (tied[crowded] & keep)
    candidates = np.nonzero(selected)[1].reshape(len(scores), k_available)  # ascending index within each row
    order = np.argsort(-np.take_along_axis(scores, candidates, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(candidates, order, axis=1)
    top[np.isneginf(np.take_along_axis(scores, top, axis=1))] = -1  # -inf = excluded, never recommended
    if k_available < k:
        top = np.hstack([top, np.full((len(top), k - k_available), -1, dtype=top.dtype)])
    return top


def mask_known(scores: np.ndarray, known_rows: sp.csr_matrix) -> None:
    """Set the score of every anime already in a user's list (row i of ``known_rows``) to -inf, in place."""
    rows = np.repeat(np.arange(known_rows.shape[0]), np.diff(known_rows.indptr))
    scores[rows, known_rows.indices] = -np.inf


def interaction_matrix(interactions: pd.DataFrame, n_users: int, n_anime: int) -> sp.csr_matrix:
    """Binary users x anime CSR matrix: 1 where the user has any row for the anime."""
    users = interactions["user_index"].to_numpy(np.int64)
    anime = interactions["anime_index"].to_numpy(np.int64)
    matrix = sp.csr_matrix((np.ones(len(users), np.float32), (users, anime)), shape=(n_users, n_anime))
    matrix.data[:] = 1.0  # duplicates were summed; presence is what counts
    return matrix


def _batch_scores(score_fn: ScoreFn, users: np.ndarray, n_anime: int) -> np.ndarray:
    # Always a float64 copy: masking writes into it and must not touch the scorer's own arrays.
    scores = np.array(score_fn(users), dtype=np.float64)
    if scores.shape != (len(users), n_anime):
        raise ValueError(f"score_fn returned shape {scores.shape}, expected ({len(users)}, {n_anime})")
    scores[np.isnan(scores)] = -np.inf
    return scores


def _ranked_batches(score_fn: ScoreFn, known: sp.csr_matrix, users: np.ndarray, k: int,
                    batch_size: int) -> Iterator[tuple[slice, np.ndarray]]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(users), batch_size):
        batch = slice(start, start + batch_size)
        scores = _batch_scores(score_fn, users[batch], known.shape[1])
        mask_known(scores, known[users[batch]])
        yield batch, top_k_items(scores, k)


def _n_users(*frames: pd.DataFrame) -> int:
    return int(max((frame["user_index"].max() for frame in frames if len(frame)), default=-1)) + 1


def recommend_top_k(score_fn: ScoreFn, train_interactions: pd.DataFrame, users: np.ndarray, n_anime: int,
                    k: int = 10, batch_size: int = 1024) -> np.ndarray:
    """The (len(users) x k) top-k lists the evaluator scores, training anime excluded; -1 pads short lists."""
    users = np.asarray(users, dtype=np.int64)
    n_users = max(_n_users(train_interactions), int(users.max(initial=-1)) + 1)
    known = interaction_matrix(train_interactions, n_users, n_anime)
    lists = np.empty((len(users), k), dtype=np.int64)
    for batch, top in _ranked_batches(score_fn, known, users, k, batch_size):
        lists[batch] = top
    return lists


def held_out_users(test_interactions: pd.DataFrame, max_users: int | None = None, seed: int = 42) -> np.ndarray:
    """Sorted user indices with held-out anime; a seeded random subset of ``max_users`` of them if given."""
    users = np.unique(test_interactions["user_index"].to_numpy(np.int64))
    if max_users is not None and 0 < max_users < len(users):
        users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
    return users


def evaluate_scorer(score_fn: ScoreFn, train_interactions: pd.DataFrame, test_interactions: pd.DataFrame,
                    n_anime: int, k: int = 10, batch_size: int = 1024,
                    users: np.ndarray | None = None) -> dict[str, float]:
    """Rank the catalogue for each test user with ``score_fn`` and return the metrics of the module docstring.

    ``train_interactions`` holds every known (non-test) row, ``test_interactions`` the held-out rows; both need
    ``user_index`` and ``anime_index``. ``users`` restricts the evaluation to some test users (default: all).
    Returns ``hr``, ``recall``, ``ndcg`` (means over users), ``coverage``, ``mean_popularity_rank`` and ``users``.
    """
    n_users = _n_users(train_interactions, test_interactions)
    known = interaction_matrix(train_interactions, n_users, n_anime)
    relevant = interaction_matrix(test_interactions, n_users, n_anime)
    users = held_out_users(test_interactions) if users is None else np.asarray(users, dtype=np.int64)
    users = users[(users >= 0) & (users < n_users)]
    users = users[np.diff(relevant.indptr)[users] > 0]  # metrics are undefined without held-out anime
    if len(users) == 0:
        raise UserError("no users with held-out test ratings: set evaluation.holdout_fraction > 0 and rerun training")
    pop_rank = popularity_ranks(train_interactions, n_anime)
    totals = dict.fromkeys(RANKING_METRICS, 0.0)
    recommended = np.zeros(n_anime, dtype=bool)
    rank_sum, n_recommended = 0.0, 0
    for batch, top in _ranked_batches(score_fn, known, users, k, batch_size):
        relevant_rows = relevant[users[batch]]
        hits = np.take_along_axis(relevant_rows.toarray() > 0, np.maximum(top, 0), axis=1) & (top >= 0)
        for name, values in batch_metrics(hits, np.diff(relevant_rows.indptr), k).items():
            totals[name] += float(values.sum())
        shown = top[top >= 0]
        recommended[shown] = True
        rank_sum += float(pop_rank[shown].sum())
        n_recommended += shown.size
    metrics = {name: total / len(users) for name, total in totals.items()}
    metrics["coverage"] = float(recommended.sum() / n_anime)
    metrics["mean_popularity_rank"] = rank_sum / n_recommended if n_recommended else float("nan")
    metrics["users"] = int(len(users))
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# Scorers: baselines and hooks for the model and the serving engine.
# ---------------------------------------------------------------------------------------------------------------

def _check_users(users: np.ndarray, n_rows: int, what: str) -> np.ndarray:
    users = np.asarray(users, dtype=np.int64)
    if users.size and (users.min() < 0 or users.max() >= n_rows):
        raise ValueError(f"user index outside the {n_rows} users {what} knows; build it with n_users covering the test users")
    return users


def popularity_scorer(train_interactions: pd.DataFrame, n_anime: int) -> ScoreFn:
    """Score = number of users with a training interaction with the anime, the same list for everyone."""
    counts = interaction_counts(train_interactions, n_anime).astype(np.float64)

    def score(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(counts, (len(users), n_anime))
    return score


def item_similarity(train_matrix: sp.csr_matrix, block_size: int = 1024) -> np.ndarray:
    """Dense float32 cosine similarity between anime columns of a binary users x anime matrix, zero diagonal.

    sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|), with U_i the users who interacted with anime i. Built in column
    blocks so the sparse intermediate never exceeds n_anime x block_size entries.
    """
    counts = np.asarray(train_matrix.sum(axis=0)).ravel()
    inverse_norms = np.divide(1.0, np.sqrt(counts), out=np.zeros_like(counts, dtype=np.float64), where=counts > 0)
    normalised = sp.csc_matrix(train_matrix @ sp.diags(inverse_norms))
    transposed = normalised.T.tocsr()
    n_anime = train_matrix.shape[1]
    similarity = np.zeros((n_anime, n_anime), dtype=np.float32)
    for start in range(0, n_anime, block_size):
        stop = min(start + block_size, n_anime)
        similarity[:, start:stop] = (transposed @ normalised[:, start:stop]).toarray()
    np.fill_diagonal(similarity, 0.0)  # an anime is not its own neighbour
    return similarity


def item_knn_scorer(train_interactions: pd.DataFrame, n_anime: int, n_users: int | None = None) -> ScoreFn:
    """Score(u, j) = sum of cosine similarities between anime j and the anime in u's training rows."""
    n_users = n_users or _n_users(train_interactions)
    train_matrix = interaction_matrix(train_interactions, n_users, n_anime)
    similarity = item_similarity(train_matrix)

    def score(users: np.ndarray) -> np.ndarray:
        users = _check_users(users, n_users, "the item-kNN scorer")
        return np.asarray(train_matrix[users] @ similarity)
    return score


def als_scorer(train_interactions: pd.DataFrame, n_anime: int, n_users: int | None = None, factors: int = 64,
               regularization: float = 0.05, iterations: int = 15, seed: int = 42) -> ScoreFn | None:
    """Implicit-feedback ALS (package ``implicit`` >= 0.5) on the binary training matrix; None if not installed."""
    try:
        from implicit.als import AlternatingLeastSquares
    except ImportError:
        logger.info("the ALS baseline is skipped: `pip install implicit` to include it")
        return None
    n_users = n_users or _n_users(train_interactions)
    model = AlternatingLeastSquares(factors=factors, regularization=regularization, iterations=iterations,
                                    random_state=seed, use_gpu=False)
    model.fit(interaction_matrix(train_interactions, n_users, n_anime), show_progress=False)
    user_factors, item_factors = np.asarray(model.user_factors), np.asarray(model.item_factors)

    def score(users: np.ndarray) -> np.ndarray:
        return user_factors[_check_users(users, n_users, "the ALS scorer")] @ item_factors.T
    return score


def embedding_scorer(user_embeddings: np.ndarray, anime_embeddings: np.ndarray) -> ScoreFn:
    """The NCF "direct" score: cosine of the user's and the anime's embedding (rows are re-normalised)."""
    user_embeddings, anime_embeddings = l2_normalise(user_embeddings), l2_normalise(anime_embeddings)

    def score(users: np.ndarray) -> np.ndarray:
        return user_embeddings[_check_users(users, len(user_embeddings), "the embedding scorer")] @ anime_embeddings.T
    return score


def per_user_scorer(score_one: Callable[[int], np.ndarray]) -> ScoreFn:
    """Adapt a one-user scorer (user_index -> n_anime scores) to the batch interface by stacking rows."""
    def score(users: np.ndarray) -> np.ndarray:
        return np.vstack([np.asarray(score_one(int(user)), dtype=np.float64) for user in users])
    return score


def without_held_out(artifacts: ModelArtifacts) -> ModelArtifacts:
    """The same artifacts with the test rows dropped from ``user_ratings``: what an engine may know offline.

    The serving engine builds user profiles and neighbour preferences from every row it is given; an engine
    built from the full artifacts would see the held-out anime it is being evaluated on.
    """
    ratings = artifacts.user_ratings
    return dataclasses.replace(artifacts, user_ratings=ratings[ratings["split"].to_numpy() != SPLIT_TEST])


def engine_scorers(engine: Any, methods: Sequence[str] = ("content", "user", "hybrid")) -> dict[str, ScoreFn]:
    """One scorer per engine method, calling ``engine.score_catalogue(user_index, method)``.

    Build the engine from ``without_held_out(artifacts)``, or held-out anime leak into its scores.
    """
    return {method: per_user_scorer(lambda user, method=method: engine.score_catalogue(user, method))
            for method in methods}


def baseline_scorers(train_interactions: pd.DataFrame, n_anime: int, n_users: int | None = None,
                     seed: int = 42) -> dict[str, ScoreFn]:
    """Popularity, item-kNN and, when ``implicit`` is installed, ALS, all fitted on the training rows."""
    scorers = {
        "popularity": popularity_scorer(train_interactions, n_anime),
        "item_knn": item_knn_scorer(train_interactions, n_anime, n_users),
    }
    if (als := als_scorer(train_interactions, n_anime, n_users, seed=seed)) is not None:
        scorers["als"] = als
    return scorers


# ---------------------------------------------------------------------------------------------------------------
# Running several methods, reports, Comet.
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvaluationSettings:
    k: int = 10
    batch_size: int = 1024
    max_users: int | None = None
    seed: int = 42


def settings_from_config(config: Mapping[str, Any]) -> EvaluationSettings:
    """Read the ``evaluation:`` section (k, batch_size, max_users) and the global seed of config.yaml."""
    section = config.get("evaluation") or {}
    defaults = EvaluationSettings()
    return EvaluationSettings(k=int(section.get("k", defaults.k)),
                              batch_size=int(section.get("batch_size", defaults.batch_size)),
                              max_users=section.get("max_users"), seed=int(config.get("seed", defaults.seed)))


def split_interactions(ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(known rows, held-out rows): test = ``split == SPLIT_TEST``; known = everything else, unrated rows too."""
    is_test = ratings["split"].to_numpy() == SPLIT_TEST
    return ratings[~is_test], ratings[is_test]


def evaluate_methods(scorers: Mapping[str, ScoreFn], train_interactions: pd.DataFrame,
                     test_interactions: pd.DataFrame, n_anime: int,
                     settings: EvaluationSettings = EvaluationSettings()) -> dict[str, dict[str, float]]:
    """Evaluate every scorer on the same (seeded) set of test users; method -> metric -> value."""
    users = held_out_users(test_interactions, settings.max_users, settings.seed)
    results = {}
    for method, score_fn in scorers.items():
        started = time.perf_counter()
        results[method] = evaluate_scorer(score_fn, train_interactions, test_interactions, n_anime,
                                          settings.k, settings.batch_size, users)
        logger.info("%s: HR@%d %.4f, Recall@%d %.4f, NDCG@%d %.4f over %d users (%.1f s)", method,
                    settings.k, results[method]["hr"], settings.k, results[method]["recall"], settings.k,
                    results[method]["ndcg"], results[method]["users"], time.perf_counter() - started)
    return results


def _write_bytes_atomically(path: Path, data: bytes) -> None:
    # Same pattern as utils.atomic.write_json: temp file beside the target, fsync, rename.
    fd, temp_name = tempfile.mkstemp(prefix=path.name + TEMP_MARKER, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _format_value(metric: str, value: Any) -> str:
    if metric == "users":
        return str(int(value))
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.1f}" if metric == "mean_popularity_rank" else f"{value:.4f}"


def markdown_report(results: Mapping[str, Mapping[str, float]], meta: Mapping[str, Any]) -> str:
    """A readable markdown table of every method's metrics, followed by the evaluation settings."""
    k = meta.get("k", "k")
    metrics = [metric for metric in METRIC_LABELS if any(metric in values for values in results.values())]
    header = ["Method"] + [METRIC_LABELS[metric].format(k=k) for metric in metrics]
    lines = ["# Offline evaluation", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, values in results.items():
        lines.append("| " + " | ".join([method] + [_format_value(m, values.get(m)) for m in metrics]) + " |")
    lines += ["", "Held-out protocol and metric formulas: see the docstring of `src/evaluation.py`.", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta.items()]
    return "\n".join(lines) + "\n"


def bar_chart_png(results: Mapping[str, Mapping[str, float]], k: int | str = "k") -> bytes:
    """A grouped bar chart (one group per method, one bar per ranking metric) as PNG bytes."""
    os.environ.setdefault("MPLCONFIGDIR", str(Path(tempfile.gettempdir()) / "anime-recommender-matplotlib"))
    # The object-oriented API with the Agg canvas needs no global backend and no pyplot state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    methods = list(results)
    figure = Figure(figsize=(max(6.0, 1.6 * len(methods) + 2), 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / len(RANKING_METRICS)
    positions = np.arange(len(methods))
    for offset, metric in enumerate(RANKING_METRICS):
        values = [results[method].get(metric, np.nan) for method in methods]
        bars = axes.bar(positions + (offset - (len(RANKING_METRICS) - 1) / 2) * width, values, width,
                        label=METRIC_LABELS[metric].format(k=k))
        axes.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    axes.set_xticks(positions, methods)
    axes.set_ylim(0, 1.15)  # every ranking metric is in [0, 1]; the headroom keeps the legend off the bars
    axes.set_ylabel("score (higher is better)")
    axes.set_title(f"Held-out ranking metrics at k={k}")
    axes.legend(loc="upper center", ncols=len(RANKING_METRICS), frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_reports(results: Mapping[str, Mapping[str, float]], folder: str | Path,
                  meta: Mapping[str, Any]) -> dict[str, Path]:
    """Write metrics.json, evaluation.md and chart.png into ``folder``, each atomically; return their paths.

    metrics.json is ``{"methods": {method: {metric: value}}, "meta": meta}``; ``meta`` should say how the numbers
    were obtained (users evaluated, k, seed, thresholds such as min_user_ratings and holdout_fraction).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / filename for name, filename in REPORT_FILES.items()}
    results = {method: dict(values) for method, values in results.items()}
    write_json(paths["metrics"], {"methods": results, "meta": dict(meta)})
    _write_bytes_atomically(paths["markdown"], markdown_report(results, meta).encode("utf-8"))
    _write_bytes_atomically(paths["chart"], bar_chart_png(results, meta.get("k", "k")))
    logger.info("evaluation reports written to %s", folder)
    return paths


def log_to_comet(experiment: Any, results: Mapping[str, Mapping[str, float]],
                 report_files: Iterable[str | Path] = ()) -> None:
    """Log each method's metrics (prefixed with the method name) and the report files to a Comet experiment.

    ``experiment`` may be None (Comet not configured): nothing happens. Comet is a side channel, so a failure
    there is logged as a warning instead of losing an evaluation that already succeeded.
    """
    if experiment is None:
        return
    try:
        for method, metrics in results.items():
            experiment.log_metrics(dict(metrics), prefix=method)
        for path in report_files:
            experiment.log_asset(str(path))
    except Exception as error:  # noqa: BLE001 - any Comet/network failure must not fail the evaluation
        logger.warning("could not log the evaluation to Comet (%s: %s)", type(error).__name__, error)
