"""Offline evaluation: metric formulas on hand-computed cases, the held-out protocol, baselines on tiny matrices
whose right answer is known, determinism, and the report files."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from config.loader import load_config
from src.data.splits import SPLIT_TEST, SPLIT_TRAIN, SPLIT_VALIDATION, held_out_users, split_interactions
from src.engine.ranking import top_k
from src.errors import UserError
from src.evaluation import baselines
from src.evaluation.baselines import BASELINES, ByUser, EmbeddingCosine
from src.evaluation.metrics import (
    batch_metrics,
    catalogue_coverage,
    hit_rate_at_k,
    mean_popularity_rank,
    ndcg_at_k,
    paired_difference,
    popularity_ranks,
    recall_at_k,
    standard_error,
)
from src.evaluation.protocol import (
    ProtocolSettings,
    engine_rankers,
    evaluate_methods,
    recommend_top_k,
    scorer_rankers,
    settings_from_config,
    without_held_out,
)
from src.evaluation.reports import log_to_comet, versus_best_baseline, write_reports
from src.models.ease import (
    ease_from_gram,
    ease_weights,
    fit_item_weight_sets,
    fit_item_weights,
    gram,
    interaction_matrix,
    keep_top_neighbours,
)
from src.models.method import Scores
from src.store.artifacts import ModelArtifacts
from src.tuning.hybrid import favourites_dropout
from tests.helpers import evaluate_scorer

SETTINGS = ProtocolSettings(k=10, batch_size=1024, max_users=None, seed=42)


def fitted(name: str, train: pd.DataFrame, n_anime: int, n_users: int | None = None, **options):
    """A baseline fitted on ``train``, scoring user rows."""
    n_users = n_users or int(train["user_index"].max()) + 1
    matrix = interaction_matrix(train, n_users, n_anime)
    baseline = BASELINES[name]
    method = baseline.fit(matrix, **options, **({"seed": 42} if baseline.seeded else {}))
    return ByUser(method, matrix) if method.takes == "rows" else method


class ScoreTable:
    """A method scoring user rows from a table of scores given by hand (one row per user)."""

    name, takes = "table", "users"

    def __init__(self, table: np.ndarray) -> None:
        self.table, self.width = table, table.shape[1]

    def score(self, users: np.ndarray) -> Scores:
        return Scores(self.table[users])


def lists_of(method, train: pd.DataFrame, users: np.ndarray, n_anime: int, k: int) -> np.ndarray:
    """The top-k lists the evaluator scores for ``method``, training anime excluded."""
    n_users = max(int(train["user_index"].max()) + 1, int(users.max()) + 1)
    return recommend_top_k(scorer_rankers({"method": method}, train, n_anime, n_users)["method"], users, k, 1024)


def frame(pairs: list[tuple[int, int]], rating: int = 8, split: int = SPLIT_TRAIN) -> pd.DataFrame:
    users, anime = zip(*pairs, strict=True) if pairs else ((), ())
    return pd.DataFrame({"user_index": np.array(users, np.int32), "anime_index": np.array(anime, np.int32),
                         "rating": np.full(len(pairs), rating, np.int8), "split": np.full(len(pairs), split, np.int8)})


def random_ratings(seed: int = 7, n_users: int = 60, n_anime: int = 40) -> pd.DataFrame:
    """A processed-like ratings frame: each user lists 8-25 anime, some unrated, 20 % of rated ones held out."""
    rng = np.random.default_rng(seed)
    popularity = rng.dirichlet(np.full(n_anime, 0.5))
    rows = []
    for user in range(n_users):
        listed = rng.choice(n_anime, size=rng.integers(8, 26), replace=False, p=popularity)
        ratings = np.where(rng.random(len(listed)) < 0.15, 0, rng.integers(1, 11, len(listed)))
        rated = np.flatnonzero(ratings > 0)
        held = set(rng.choice(rated, size=max(1, len(rated) // 5), replace=False).tolist())
        for position, (anime, rating) in enumerate(zip(listed, ratings, strict=True)):
            split = SPLIT_TEST if position in held else (SPLIT_VALIDATION if rng.random() < 0.05 else SPLIT_TRAIN)
            rows.append((user, anime, rating, split))
    return pd.DataFrame(rows, columns=["user_index", "anime_index", "rating", "split"]).astype(
        {"user_index": np.int32, "anime_index": np.int32, "rating": np.int8, "split": np.int8})


def checkerboard(n: int = 10) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, int]]:
    """Even users like even anime, odd users odd anime; each user has one liked anime held out."""
    train, test, held = [], [], {}
    for user in range(n):
        liked = list(range(user % 2, n, 2))
        held[user] = liked[(user // 2) % len(liked)]
        train += [(user, anime) for anime in liked if anime != held[user]]
        test.append((user, held[user]))
    return frame(train), frame(test, split=SPLIT_TEST), held


# --- metric functions, hand-computed -------------------------------------------------------------------------

def test_hit_rate_counts_only_the_first_k_positions():
    ranked = list(range(20))
    assert hit_rate_at_k(ranked, {9}, 10) == 1.0   # position 10
    assert hit_rate_at_k(ranked, {10}, 10) == 0.0  # position 11
    assert hit_rate_at_k(ranked, {10, 3}, 10) == 1.0


def test_recall_divides_by_min_of_k_and_relevant_count():
    ranked = list(range(10))
    assert recall_at_k(ranked, {3, 99}, 10) == 0.5            # 1 hit of 2 relevant
    assert recall_at_k(ranked, {0, 1, 2}, 10) == 1.0          # fewer than k relevant, all found
    assert recall_at_k(ranked, set(range(30)), 10) == 1.0     # more than k relevant: a full list is perfect
    assert recall_at_k(ranked, set(range(5)) | set(range(100, 120)), 10) == 0.5  # 5 hits / min(10, 25)
    assert recall_at_k([5, 6, 7, 8, 9], {7, 8, 42}, 3) == pytest.approx(1 / 3)   # only the first 3 count


def test_ndcg_with_hits_at_specific_positions():
    ranked = list(range(10))
    assert ndcg_at_k(ranked, {0}, 10) == 1.0
    assert ndcg_at_k(ranked, {1}, 10) == pytest.approx(1 / math.log2(3))          # hit at position 2
    assert ndcg_at_k(ranked, {2}, 10) == pytest.approx(0.5)                       # 1/log2(4)
    # hits at positions 1 and 3 of two relevant: (1 + 1/2) / (1 + 1/log2(3))
    assert ndcg_at_k(ranked, {0, 2}, 10) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(ranked, {0, 2}, 10) == pytest.approx(0.919721, abs=1e-6)
    # 20 relevant, hit only at position 10: IDCG sums over min(10, 20) = 10 positions
    idcg = sum(1 / math.log2(i + 1) for i in range(1, 11))
    assert ndcg_at_k(ranked, {9} | set(range(100, 119)), 10) == pytest.approx((1 / math.log2(11)) / idcg)
    assert ndcg_at_k(list(range(20)), {15}, 10) == 0.0


def test_metrics_refuse_undefined_cases():
    with pytest.raises(ValueError, match="no relevant items"):
        recall_at_k([1, 2], set(), 10)
    with pytest.raises(ValueError, match="k must be"):
        ndcg_at_k([1, 2], {1}, 0)


def test_coverage_and_mean_popularity_rank():
    assert catalogue_coverage([[0, 1], [1, 2, -1]], 10) == pytest.approx(0.3)  # -1 is padding
    ranks = np.array([1.0, 2.0, 3.0, 4.0])
    assert mean_popularity_rank([[0, 1], [3, -1]], ranks) == pytest.approx((1 + 2 + 4) / 3)
    assert math.isnan(mean_popularity_rank([[-1]], ranks))


def test_popularity_ranks_count_users_and_share_ties():
    train = frame([(0, 0), (1, 0), (2, 0), (0, 2), (1, 2), (2, 2), (0, 1), (0, 1)])  # duplicate (0, 1) counts once
    assert popularity_ranks(train, 4).tolist() == [1.5, 3.0, 1.5, 4.0]


def test_batch_metrics_match_the_per_user_functions():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n_relevant = int(rng.integers(1, 25))
        relevant = set(rng.choice(40, size=n_relevant, replace=False).tolist())
        ranked = rng.permutation(40)[:10]
        hits = np.isin(ranked, list(relevant))[None, :]
        values = batch_metrics(hits, np.array([n_relevant]), 10)
        assert values["hr"][0] == hit_rate_at_k(ranked, relevant, 10)
        assert values["recall"][0] == pytest.approx(recall_at_k(ranked, relevant, 10))
        assert values["ndcg"][0] == pytest.approx(ndcg_at_k(ranked, relevant, 10))


# --- ranking and the held-out protocol ------------------------------------------------------------------------

def test_paired_difference_and_standard_error_by_hand():
    # differences 0.5, 0, 0: mean 1/6; sample variance ((1/3)^2 + 2 (1/6)^2) / 2 = 1/12; SE sqrt(1/12) / sqrt(3) = 1/6
    assert paired_difference(np.array([1.0, 0.5, 0.0]), np.array([0.5, 0.5, 0.0])) == pytest.approx((1 / 6, 1 / 6))
    assert paired_difference(np.array([0.3, 0.3]), np.array([0.1, 0.1])) == pytest.approx((0.2, 0.0))  # no spread
    assert standard_error(np.array([0.25])) == 0.0 and standard_error(np.array([0.0, 1.0])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one value per user"):
        paired_difference(np.zeros(3), np.zeros(4))


def test_top_k_orders_best_first_breaks_ties_by_index_and_pads():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -np.inf], [1.0, 1.0, 1.0, 1.0, 1.0]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]
    assert top_k(scores, 7).tolist() == [[1, 3, 2, 0, -1, -1, -1], [0, 1, 2, 3, 4, -1, -1]]
    assert top_k(np.array([[np.inf, 0.0, -np.inf]]), 3).tolist() == [[0, 1, -1]]  # only -inf is excluded
    with pytest.raises(ValueError, match="k must be"):
        top_k(scores, 0)
    # ties at the k-th place are resolved by index too, whatever order argpartition leaves them in
    rng = np.random.default_rng(1)
    many = rng.integers(0, 3, size=(50, 500)).astype(float)
    expected = np.lexsort((np.tile(np.arange(500), (50, 1)), -many), axis=1)[:, :10]
    assert np.array_equal(top_k(many, 10), expected)


def test_top_k_of_a_batch_split_over_threads_equals_each_row_ranked_alone():
    rng = np.random.default_rng(8)
    scores = rng.integers(0, 5, (600, 40)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    import scipy.sparse as sp
    exclude = sp.random(600, 40, density=0.2, random_state=8, format="csr")
    tiebreak, allowed = rng.permutation(40), rng.random(40) < 0.8
    batch = top_k(scores, 10, exclude=exclude, tiebreak=tiebreak, allowed=allowed)
    alone = np.vstack([top_k(scores[i], 10, exclude=exclude[i], tiebreak=tiebreak, allowed=allowed)
                       for i in range(len(scores))])
    np.testing.assert_array_equal(batch, alone)


def test_nan_scores_are_never_recommended():
    train, test = split_interactions(random_ratings())
    metrics = evaluate_scorer(ScoreTable(np.full((60, 40), np.nan)), train, test, 40)
    assert metrics["hr"] == 0.0 and metrics["coverage"] == 0.0 and math.isnan(metrics["mean_popularity_rank"])


def test_training_items_are_never_recommended():
    ratings = random_ratings()
    train, test = split_interactions(ratings)
    n_anime = 40
    known = np.zeros((60, n_anime))
    known[train["user_index"], train["anime_index"]] = 1.0
    relevant = np.zeros((60, n_anime))
    relevant[test["user_index"], test["anime_index"]] = 1.0

    cheater = ScoreTable(100 * known + relevant)  # training anime (unrated ones too) score highest

    users = held_out_users(test)
    lists = lists_of(cheater, train, users, n_anime, k=10)
    for user, recommended in zip(users, lists, strict=True):
        assert not set(recommended[recommended >= 0]) & set(np.flatnonzero(known[user]))
    metrics = evaluate_scorer(cheater, train, test, n_anime, k=10)
    assert metrics["recall"] == 1.0 and metrics["ndcg"] == pytest.approx(1.0) and metrics["hr"] == 1.0


def test_split_keeps_unrated_and_validation_rows_as_known():
    ratings = pd.concat([frame([(0, 1)], rating=0), frame([(0, 2)], split=SPLIT_VALIDATION),
                         frame([(0, 3)], split=SPLIT_TEST), frame([(0, 4)])])
    train, test = split_interactions(ratings)
    assert sorted(train["anime_index"]) == [1, 2, 4] and test["anime_index"].tolist() == [3]


def test_evaluator_equals_per_user_metrics_and_ignores_batch_size():
    ratings = random_ratings()
    train, test = split_interactions(ratings)
    rng = np.random.default_rng(3)
    table = rng.random((60, 40))
    table[5, 7] = np.nan  # NaN means "never recommend", not an error

    score = ScoreTable(table)

    users = held_out_users(test)
    lists = lists_of(score, train, users, 40, k=10)
    relevant = test.groupby("user_index")["anime_index"].apply(set)
    expected = {
        "hr": np.mean([hit_rate_at_k(lst, relevant[u], 10) for u, lst in zip(users, lists, strict=True)]),
        "recall": np.mean([recall_at_k(lst, relevant[u], 10) for u, lst in zip(users, lists, strict=True)]),
        "ndcg": np.mean([ndcg_at_k(lst, relevant[u], 10) for u, lst in zip(users, lists, strict=True)]),
        "coverage": catalogue_coverage(lists, 40),
        "mean_popularity_rank": mean_popularity_rank(lists, popularity_ranks(train, 40)),
        "recall_se": np.std([recall_at_k(lst, relevant[u], 10) for u, lst in zip(users, lists, strict=True)],
                            ddof=1) / np.sqrt(len(users)),
    }
    assert 7 not in lists[list(users).index(5)]
    for batch_size in (1, 7, 1000):
        metrics = evaluate_scorer(score, train, test, 40, k=10, batch_size=batch_size)
        assert metrics["users"] == len(users)
        for name, value in expected.items():
            assert metrics[name] == pytest.approx(value), name


def test_evaluator_rejects_a_wrong_shape_and_an_empty_test_set():
    train, test = split_interactions(random_ratings())
    with pytest.raises(ValueError, match="shape"):
        evaluate_scorer(ScoreTable(np.zeros((60, 39))), train, test, 40)
    with pytest.raises(UserError, match="holdout_fraction"):
        evaluate_scorer(ScoreTable(np.zeros((60, 40))), train, test.iloc[:0], 40)


# --- baselines on tiny matrices with a known answer ----------------------------------------------------------

def test_popularity_recommends_the_most_interacted_unseen_anime_first():
    # training counts: anime 0 by 3 users, anime 1 by 2, anime 2 by 1, anime 3 by none
    train = frame([(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (3, 2)])
    test = frame([(3, 0), (2, 3)], split=SPLIT_TEST)
    scorer = fitted("popularity", train, 4)
    assert lists_of(scorer, train, np.array([3, 2]), 4, k=3).tolist() == [[0, 1, 3], [1, 2, 3]]
    metrics = evaluate_scorer(scorer, train, test, 4, k=1)
    assert metrics["hr"] == 0.5 and metrics["recall"] == 0.5       # user 3 gets anime 0; user 2 gets anime 1
    assert metrics["coverage"] == 0.5 and metrics["mean_popularity_rank"] == 1.5  # ranks 1 and 2


def test_item_knn_ranks_the_held_out_checkerboard_item_first():
    train, test, held = checkerboard()
    scorer = fitted("item_knn", train, 10, n_users=10)
    users = np.arange(10)
    assert lists_of(scorer, train, users, 10, k=1)[:, 0].tolist() == [held[u] for u in users]
    metrics = evaluate_scorer(scorer, train, test, 10, k=1)
    assert metrics["hr"] == metrics["recall"] == metrics["ndcg"] == 1.0


def test_asking_for_more_items_than_exist_is_handled():
    train, test, held = checkerboard()
    lists = lists_of(fitted("item_knn", train, 10), train, np.arange(10), 10, k=25)
    assert lists.shape == (10, 25)
    for user, recommended in enumerate(lists):
        shown = recommended[recommended >= 0]
        assert len(shown) == 6 and shown[0] == held[user] and (recommended[6:] == -1).all()
    metrics = evaluate_scorer(fitted("item_knn", train, 10), train, test, 10, k=25)
    assert metrics["recall"] == 1.0 and metrics["coverage"] == 1.0


def test_als_baseline_ranks_the_held_out_checkerboard_item_first():
    train, test, held = checkerboard()
    scorer = fitted("als", train, 10, factors=2, regularization=0.01, alpha=1.0, iterations=20)
    assert evaluate_scorer(scorer, train, test, 10, k=1)["hr"] == 1.0


def test_ease_ranks_the_held_out_checkerboard_item_first_dense_and_pruned():
    train, test, held = checkerboard()
    assert evaluate_scorer(fitted("ease", train, 10, regularisation=1.0), train, test, 10, k=1)["hr"] == 1.0
    weights = ease_weights(interaction_matrix(train, 10, 10), 1.0)
    assert np.allclose(np.diag(weights), 0.0)  # an anime never recommends itself
    pruned = keep_top_neighbours(weights, 3)
    assert (np.diff(pruned.tocsc().indptr) <= 3).all()  # each anime keeps at most 3 contributors
    matrix = interaction_matrix(train, 10, 10)
    scorer = ByUser(baselines.EASE(pruned, np.arange(10), 10), matrix)
    assert evaluate_scorer(scorer, train, test, 10, k=1)["hr"] == 1.0


def test_ease_matches_its_closed_form():
    rng = np.random.default_rng(4)
    matrix = (rng.random((30, 12)) < 0.3).astype(np.float32)
    gram = matrix.T @ matrix + 5.0 * np.eye(12)
    precision = np.linalg.inv(gram)
    expected = -precision / np.diag(precision)
    np.fill_diagonal(expected, 0.0)
    import scipy.sparse as sp
    np.testing.assert_allclose(ease_weights(sp.csr_matrix(matrix), 5.0), expected, atol=1e-5)


def test_gram_is_xtx_whatever_the_block_of_users():
    import scipy.sparse as sp
    matrix = sp.random(41, 9, density=0.3, random_state=2, format="csr", dtype=np.float32)
    expected = (matrix.T @ matrix).toarray()
    for block_bytes in (4 * 9, 4 * 9 * 5, 1 << 20):  # one user, five users and every user per block
        result = gram(matrix, block_bytes=block_bytes)
        assert result.flags["C_CONTIGUOUS"] and result.dtype == np.float32
        np.testing.assert_allclose(result, expected, rtol=1e-6)
    assert gram(sp.csr_matrix((0, 3))).tolist() == [[0.0] * 3] * 3
    assert gram(sp.csr_matrix((3, 0))).shape == (0, 0)


def test_one_gram_serves_every_regularisation_unchanged():
    import scipy.sparse as sp
    matrix = sp.csr_matrix((np.random.default_rng(5).random((30, 12)) < 0.3).astype(np.float32))
    shared = gram(matrix)
    before = shared.copy()
    for regularisation in (1.0, 5.0, 50.0):
        np.testing.assert_allclose(ease_from_gram(shared, regularisation), ease_weights(matrix, regularisation),
                                   atol=1e-6)
    np.testing.assert_array_equal(shared, before)  # not overwritten unless asked


def test_edlae_raises_each_anime_s_regularisation_by_its_dropout_scaled_count():
    """Two anime seen by a and b users, c of them both: EASE's B is [[0, c / (a + λ)], [c / (b + λ), 0]]; EDLAE
    with dropout p raises each diagonal by p / (1 - p) times its own count, a / (1 - p) + λ (worked by hand)."""
    a, b, c, regularisation = 6.0, 3.0, 2.0, 1.0
    shared = np.array([[a, c], [c, b]], np.float32)
    np.testing.assert_allclose(ease_from_gram(shared, regularisation),
                               [[0, c / (a + regularisation)], [c / (b + regularisation), 0]], rtol=1e-6)
    np.testing.assert_allclose(ease_from_gram(shared, regularisation, 0.75),
                               [[0, c / (a / 0.25 + regularisation)], [c / (b / 0.25 + regularisation), 0]], rtol=1e-6)
    np.testing.assert_array_equal(ease_from_gram(shared, regularisation, 0.0), ease_from_gram(shared, regularisation))


@pytest.mark.parametrize("dropout", [-0.1, 1.0, float("nan")])
def test_edlae_refuses_a_dropout_outside_zero_to_one(dropout):
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        ease_from_gram(np.eye(2, dtype=np.float32), 1.0, dropout)


def test_favourites_dropout_matches_the_share_a_favourites_list_leaves_out():
    assert favourites_dropout("matched", profile_anime=400.0, favourites=20) == 0.95
    assert favourites_dropout("matched", profile_anime=110.0, favourites=20) == round(1 - 20 / 110, 3)
    assert favourites_dropout("matched", profile_anime=15.0, favourites=20) == 0.0  # no longer than the list
    assert favourites_dropout("matched", profile_anime=0.0, favourites=20) == 0.0  # a carve without users
    assert favourites_dropout(0.5, profile_anime=400.0, favourites=20) == 0.5


def test_item_weight_sets_share_an_inversion_and_equal_separate_fits():
    train, _, _ = checkerboard()
    dense = {"values": "any", "regularisation": 1.0, "neighbours": None, "max_anime": None}
    pruned, weighted = {**dense, "neighbours": 3}, {**dense, "values": "weighted"}
    together = fit_item_weight_sets(train, 10, 10, [pruned, dense, weighted])
    for fitted, settings in zip(together, (pruned, dense, weighted), strict=True):
        alone = fit_item_weights(train, 10, 10, settings)
        as_array = [w.toarray() if hasattr(w, "toarray") else w for w in (fitted.weights, alone.weights)]
        np.testing.assert_allclose(*as_array, atol=1e-6)
        np.testing.assert_array_equal(fitted.support, alone.support)
    assert together[1].weights is not together[2].weights  # other values: another inversion


def test_item_weight_sets_fit_a_dropout_apart_and_record_it():
    train, _, _ = checkerboard()
    dense = {"values": "any", "regularisation": 1.0, "neighbours": None, "max_anime": None}
    plain, denoised = fit_item_weight_sets(train, 10, 10, [dense, {**dense, "dropout": 0.5}])
    assert (plain.dropout, denoised.dropout) == (0.0, 0.5)
    matrix = interaction_matrix(train, 10, 10)
    np.testing.assert_allclose(denoised.weights, ease_weights(matrix, 1.0, 0.5), atol=1e-6)
    assert not np.allclose(plain.weights, denoised.weights)


def test_a_batch_split_over_threads_scores_every_row_exactly_as_alone():
    import scipy.sparse as sp

    from src.engine.scorers import rows_times
    rows = sp.random(700, 90, density=0.2, format="csr", dtype=np.float32, random_state=3)
    dense = np.random.default_rng(3).random((90, 40), dtype=np.float32)
    sparse = sp.random(90, 40, density=0.2, format="csr", dtype=np.float32, random_state=4)
    for weights in (dense, sparse):
        batch = rows_times(rows, weights, rows_per_thread=100)  # several threads where the machine has the cores
        alone = np.vstack([np.asarray(sp.csr_matrix(rows[i] @ weights).toarray()) for i in range(rows.shape[0])])
        np.testing.assert_array_equal(batch, alone)  # to the bit: serving and evaluation agree


def test_item_similarity_is_the_shrunk_cosine_pruned_per_anime():
    # 3 users x 3 anime: anime 0 and 1 share two users, anime 2 shares one with each
    matrix = interaction_matrix(pd.DataFrame({"user_index": [0, 0, 1, 1, 2, 2], "anime_index": [0, 1, 0, 1, 1, 2],
                                              "rating": 8}), 3, 3)
    norms = np.sqrt([2.0, 3.0, 1.0])
    overlap = np.array([[0, 2, 0], [2, 0, 1], [0, 1, 0]], np.float32)
    expected = overlap / (np.outer(norms, norms) + 1.0)
    np.testing.assert_allclose(baselines.item_similarity(matrix, shrink=1.0), expected, rtol=1e-6)
    pruned = baselines.item_similarity(matrix, shrink=1.0, neighbours=1)
    # each anime (column) keeps its one most similar anime: 0 <- 1, 1 <- 0, 2 <- 1
    assert sorted(zip(*pruned.nonzero(), strict=True)) == [(0, 1), (1, 0), (1, 2)]
    shared = baselines.cosine_similarity(matrix, 1.0)
    scores = baselines.ItemKNN.fit(matrix, 1.0, 1, similarity=shared).score(matrix).values
    np.testing.assert_allclose(scores, (matrix @ pruned).toarray(), rtol=1e-6)
    np.testing.assert_array_equal(shared, baselines.cosine_similarity(matrix, 1.0))  # pruning left it whole


def test_interaction_values_count_weigh_or_drop_unrated_rows():
    rows = pd.DataFrame({"user_index": [0, 0, 1], "anime_index": [0, 1, 1], "rating": [8, 0, 10]})
    assert interaction_matrix(rows, 2, 2, "any").toarray().tolist() == [[1, 1], [0, 1]]
    assert interaction_matrix(rows, 2, 2, "rated").toarray().tolist() == [[1, 0], [0, 1]]
    np.testing.assert_allclose(interaction_matrix(rows, 2, 2, "weighted").toarray(), [[0.8, 0.5], [0, 1.0]])


# --- hooks for the model and the engine ----------------------------------------------------------------------

def test_the_embedding_baseline_is_the_cosine_of_normalised_embeddings():
    anime = np.array([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    users = np.array([[0.0, 0.5], [2.0, 0.1]])
    scores = EmbeddingCosine(users, anime).score(np.array([0, 1])).values
    expected = ((users / np.linalg.norm(users, axis=1, keepdims=True))
                @ (anime / np.linalg.norm(anime, axis=1, keepdims=True)).T)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    assert scores.argmax(axis=1).tolist() == [1, 0]


def test_the_engine_plugs_in_through_its_own_ranking():
    class Engine:  # the shape of Recommender.rank_users(user_rows, k, method)
        def rank_users(self, users: np.ndarray, k: int, method: str) -> np.ndarray:
            scores = np.zeros((len(users), 10))
            scores[np.arange(len(users)), (users + (1 if method == "embedding" else 0)) % 10] = 1.0
            return top_k(scores, k)

    train, test, held = checkerboard()
    rankers = engine_rankers(Engine(), methods=("embedding", "hybrid"))
    assert rankers["hybrid"](np.array([3, 4]), 1)[:, 0].tolist() == [3, 4]
    results = evaluate_methods(rankers, train, test, 10, SETTINGS).metrics
    assert set(results) == {"embedding", "hybrid"}


def test_engine_view_of_the_artifacts_has_no_held_out_rows():
    ratings = random_ratings()
    artifacts = ModelArtifacts(np.eye(60, 4, dtype=np.float32), np.eye(40, 4, dtype=np.float32), np.arange(60),
                               np.arange(40), pd.DataFrame({"anime_id": np.arange(40)}), ratings, {"source": "test"})
    view = without_held_out(artifacts)
    assert (view.user_ratings["split"] != SPLIT_TEST).all()
    assert len(view.user_ratings) == (ratings["split"] != SPLIT_TEST).sum()
    assert view.anime_embeddings is artifacts.anime_embeddings and len(artifacts.user_ratings) == len(ratings)


# --- determinism, settings, reports, Comet --------------------------------------------------------------------

def test_whole_evaluation_is_deterministic_with_a_fixed_seed(tmp_path):
    ratings = random_ratings(seed=11, n_users=80)
    train, test = split_interactions(ratings)
    settings = ProtocolSettings(k=10, batch_size=16, max_users=30, seed=5)

    def run(folder):
        scorers = {name: fitted(name, train, 40, 80) for name in ("popularity", "item_knn")}
        results = evaluate_methods(scorer_rankers(scorers, train, 40, 80),
                                   train, test, 40, settings).metrics
        write_reports(results, folder, {"k": 10, "seed": 5, "users_evaluated": results["popularity"]["users"]})
        return results

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first == second and first["popularity"]["users"] == 30
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()
    assert np.array_equal(held_out_users(test, 30, 5), held_out_users(test, 30, 5))
    assert not np.array_equal(held_out_users(test, 30, 5), held_out_users(test, 30, 6))


def test_settings_come_from_the_evaluation_section():
    settings = settings_from_config(load_config())
    assert settings.k == 10 and settings.batch_size >= 1 and settings.seed == 42
    config = load_config()
    config["seed"] = 3
    config["evaluation"].update(k=5, batch_size=1024, max_users=100)
    assert settings_from_config(config) == ProtocolSettings(5, 1024, 100, 3)


def test_reports_are_written_and_parseable(tmp_path):
    import matplotlib.image

    results = {"popularity": {"hr": 0.8, "recall": 0.2, "ndcg": 0.21, "coverage": 0.01,
                              "mean_popularity_rank": 10.5, "users": 100},
               "item_knn": {"hr": 0.9, "recall": 0.3, "ndcg": 0.35, "coverage": 0.05,
                            "mean_popularity_rank": float("nan"), "users": 100}}
    meta = {"k": 10, "seed": 42, "users_evaluated": 100, "min_user_ratings": 50, "holdout_fraction": 0.2}
    paths = write_reports(results, tmp_path / "reports", meta)

    stored = json.loads(paths["metrics"].read_text(encoding="utf-8"))
    assert stored["meta"] == meta and stored["methods"]["item_knn"]["recall"] == 0.3
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "| Method | HR@10 | Recall@10 | NDCG@10 |" in markdown
    assert "| popularity | 0.8000 | 0.2000 | 0.2100 | 0.0100 | 10.5 | 100 |" in markdown and "n/a" in markdown
    image = matplotlib.image.imread(paths["chart"])
    assert image.ndim == 3 and image.shape[0] > 100
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["chart.png", "evaluation.md", "metrics.json"]


def test_comet_hook_logs_metrics_and_assets_and_tolerates_none_and_failures(tmp_path, caplog):
    class Experiment:
        def __init__(self):
            self.metrics, self.assets = [], []

        def log_metrics(self, metrics, prefix=None):
            self.metrics.append((prefix, metrics))

        def log_asset(self, path):
            self.assets.append(path)

    results = {"popularity": {"hr": 0.8, "recall": 0.2}}
    experiment = Experiment()
    log_to_comet(experiment, results, [tmp_path / "metrics.json"])
    assert experiment.metrics == [("popularity", {"hr": 0.8, "recall": 0.2})]
    assert experiment.assets == [str(tmp_path / "metrics.json")]
    log_to_comet(None, results, [])

    class Offline(Experiment):
        def log_metrics(self, metrics, prefix=None):
            raise ConnectionError("no network")

    log_to_comet(Offline(), results, [])  # must not raise


# --- newcomers ----------------------------------------------------------------------------------------------

def test_newcomer_favourites_are_their_top_rated_and_the_rest_is_relevant():
    from src.data.splits import newcomer_split
    from src.evaluation.newcomers import item_scorer_rankers

    rows = pd.DataFrame({"user_id": [7, 7, 7, 7, 7, 9, 9], "anime_index": [4, 2, 3, 1, 5, 0, 1],
                         "rating": [9, 10, 9, 5, 0, 8, 7]})
    split = newcomer_split(rows, max_favourites=2)
    # user 9 has nothing beyond their two favourites, so nothing to score them on: left out
    assert split.user_ids.tolist() == [7] and len(split) == 1
    assert split.favourites[0].tolist() == [2, 3]  # 10 first, then the 9 with the lower anime index
    assert sorted(split.relevant_rows["anime_index"]) == [1, 4]  # the other rated; the unrated 5 is neither
    counts = np.array([0.0, 1.0, 9.0, 8.0, 2.0, 7.0])
    rankers = item_scorer_rankers(split, {"popularity": baselines.Popularity(counts)}, 6)
    assert rankers["popularity"](np.array([0]), 3).tolist() == [[5, 4, 1]]  # favourites 2 and 3 never come back


def test_the_product_is_compared_with_the_best_baseline_user_by_user(tmp_path):
    train, test, held = checkerboard()
    rng = np.random.default_rng(0)
    noise = rng.random((10, 10))
    perfect = np.zeros((10, 10))
    perfect[np.arange(10), [held[user] for user in range(10)]] = 1.0
    scorers = {"popularity": ScoreTable(noise), "item_knn": ScoreTable(np.tile(noise[0], (10, 1))),
               "hybrid": ScoreTable(perfect)}
    evaluation = evaluate_methods(scorer_rankers(scorers, train, 10), train, test, 10,
                                  ProtocolSettings(k=1, batch_size=3, max_users=None, seed=1))
    recalls = evaluation.recalls
    assert recalls["hybrid"].tolist() == [1.0] * 10  # each user's held-out anime first
    for name, values in recalls.items():
        assert values.mean() == pytest.approx(evaluation.metrics[name]["recall"])
        assert standard_error(values) == pytest.approx(evaluation.metrics[name]["recall_se"])
    versus = versus_best_baseline(evaluation, "hybrid")
    best = max(("popularity", "item_knn"), key=lambda name: evaluation.metrics[name]["recall"])
    assert versus["baseline"] == best and versus["users"] == 10
    assert (versus["difference"], versus["standard_error"]) == pytest.approx(
        paired_difference(recalls["hybrid"], recalls[best]))
    assert versus_best_baseline(evaluation, "favourites") is None  # no such product in this section
    write_reports(evaluation.metrics, tmp_path, {"k": 1}, versus)
    assert json.loads((tmp_path / "metrics.json").read_text())["versus"] == pytest.approx(versus)
    line = (f"Per user, over the same 10 users: {versus['difference']:+.4f}, standard error "
            f"{versus['standard_error']:.4f} ({versus['difference'] / versus['standard_error']:.1f} standard errors)")
    assert line in (tmp_path / "evaluation.md").read_text()


def test_reports_carry_the_newcomer_section_and_the_ratio_to_the_best_baseline(tmp_path):
    results = {"popularity": {"hr": 0.5, "recall": 0.2, "ndcg": 0.2, "users": 10},
               "ease": {"hr": 0.8, "recall": 0.5, "ndcg": 0.5, "users": 10},
               "hybrid": {"hr": 0.9, "recall": 0.55, "ndcg": 0.6, "users": 10}}
    newcomers = {"methods": {"ease": {"hr": 0.7, "recall": 0.4, "ndcg": 0.4, "users": 5},
                             "favourites": {"hr": 0.7, "recall": 0.42, "ndcg": 0.41, "users": 5}},
                 "meta": {"newcomers": 5}}
    write_reports(results, tmp_path, {"k": 10}, newcomers=newcomers)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["newcomers"]["methods"]["favourites"]["recall"] == 0.42
    markdown = (tmp_path / "evaluation.md").read_text()
    assert "**hybrid** Recall@10 0.5500 against the best baseline, **ease**, 0.5000: **1.100x**" in markdown
    assert "**favourites** Recall@10 0.4200 against the best baseline, **ease**, 0.4000: **1.050x**" in markdown
