"""The engine on the tiny two-group artifact set, where the right answers are known."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from config.loader import ConfigError, load_config
from src.data.splits import SPLIT_TEST
from src.engine.interactions import row_columns
from src.engine.recommender import Filters, Recommender, ServingConfig
from src.engine.validation import InvalidRequestError, UnknownAnimeError, UnknownUserError
from src.errors import ArtifactError
from src.store.artifacts import ModelArtifacts, load_model_artifacts
from tests.serving_fixtures import (
    GROUP_A_IDS,
    GROUP_B_IDS,
    GROUP_B_USERS,
    TEST_USER,
    TEST_USER_RATINGS,
    TEST_USER_UNSEEN_A,
    tiny_frames,
    write_tiny_artifacts,
)


def ids(items: list[dict]) -> list[int]:
    return [item["anime_id"] for item in items]


# ---------------------------------------------------------------------- user recommendations
def test_group_a_user_gets_the_unseen_group_a_anime_first(engine: Recommender) -> None:
    top = engine.recommend_for_user(TEST_USER, n=2)
    assert set(ids(top)) == TEST_USER_UNSEEN_A


@pytest.mark.parametrize("weights", [(0.5, 0.5), (1.0, 0.0), (0.0, 1.0), (0.9, 0.1)])
def test_already_rated_or_watched_anime_never_come_back(engine: Recommender, weights: tuple[float, float]) -> None:
    # TEST_USER_RATINGS includes a test-split row (21) and a rating-0 "watched" row (101)
    items = engine.recommend_for_user(TEST_USER, n=100, user_weight=weights[0], content_weight=weights[1])
    assert not set(ids(items)) & set(TEST_USER_RATINGS)


def test_asking_more_than_the_catalogue_returns_every_unseen_anime(engine: Recommender) -> None:
    items = engine.recommend_for_user(TEST_USER, n=100)
    assert len(items) == engine.n_anime - len(TEST_USER_RATINGS)
    assert len(set(ids(items))) == len(items)
    assert [item["match"] for item in items] == sorted((item["match"] for item in items), reverse=True)


def test_every_item_has_a_reason_and_the_documented_fields(engine: Recommender) -> None:
    for item in engine.recommend_for_user(TEST_USER, n=100):
        assert item["reasons"] and all(isinstance(reason, str) and reason for reason in item["reasons"])
        assert {"anime_id", "name", "english_name", "genres", "type", "score", "synopsis", "episodes", "year",
                "members", "premiered", "match"} <= item.keys()
        assert 0.0 <= item["match"] <= 1.0


def test_reasons_name_the_neighbours_and_the_favourite(engine: Recommender) -> None:
    first = engine.recommend_for_user(TEST_USER, n=1)[0]
    assert any(reason.startswith("liked by ") and "of your 10 most similar users" in reason
               for reason in first["reasons"])
    assert any(reason.startswith("similar to ") and "which you rated" in reason for reason in first["reasons"])



@pytest.mark.parametrize("user_row", range(6))
def test_reasons_count_for_the_shown_anime_what_the_user_based_scorer_counts(engine: Recommender,
                                                                            user_row: int) -> None:
    """When the mix leaves similar users out, the reasons count their votes for the shown anime only; the counts are
    the user-based scorer's own, rated and unrated anime alike."""
    profiles = engine.interactions.profiles([user_row])
    full = engine.similar_users_scorer.score(profiles).evidence
    anime = np.random.default_rng(user_row).permutation(engine.n_anime)[:7]
    counts, asked = engine.similar_users_scorer.counts_of(profiles, anime)
    assert asked == full["similar_users"]
    np.testing.assert_array_equal(counts, full["similar_user_counts"][0][anime])


def test_row_columns_are_the_chosen_rows_stored_entries_in_order() -> None:
    """Known answer: rows 2 and 0 of a matrix whose rows store their columns unsorted (best first), and no row."""
    matrix = sp.csr_matrix((np.ones(5, np.float32), np.array([3, 1, 0, 4, 2]), np.array([0, 2, 2, 5])), shape=(3, 5))
    np.testing.assert_array_equal(row_columns(matrix, np.array([2, 0])), [0, 4, 2, 3, 1])
    np.testing.assert_array_equal(row_columns(matrix, np.array([1])), [])
    assert row_columns(matrix, np.array([], dtype=np.int64)).size == 0


def test_reasons_without_the_user_based_part_still_name_the_similar_users(engine: Recommender) -> None:
    first = engine.recommend_for_user(TEST_USER, n=1, user_weight=0.0, content_weight=1.0)[0]
    assert any(reason.startswith("liked by ") and "of your 10 most similar users" in reason
               for reason in first["reasons"])


def test_a_newcomer_is_folded_in_once_per_request(engine: Recommender, monkeypatch) -> None:
    """The NCF's scores and the similar users both need the favourites' fold-in; one request computes it once."""
    calls = []
    fold_in = engine.ncf.fold_in
    monkeypatch.setattr(engine.ncf, "fold_in", lambda liked: calls.append(1) or fold_in(liked))
    engine.recommend_from_favourites([101, 102], n=4)
    assert len(calls) == 1
    engine.recommend_from_favourites([101, 102], n=4)
    assert len(calls) == 2  # a new request folds in anew: nothing is kept between requests

def test_a_group_b_user_gets_the_group_b_anime_they_have_not_seen(engine: Recommender) -> None:
    # GROUP_B_USERS[0] rated every group-B anime but Kimi no Na wa. (104)
    assert ids(engine.recommend_for_user(GROUP_B_USERS[0], n=1)) == [104]


# ---------------------------------------------------------------------- filters
def test_filters_apply_before_the_cut_so_n_items_still_come_back(engine: Recommender) -> None:
    romance = engine.recommend_for_user(TEST_USER, n=3, filters=Filters(genres=("Romance",)))
    # group B anime rank below every group A anime for this user, yet three come back
    assert len(romance) == 3
    assert all("Romance" in item["genres"] for item in romance)


@pytest.mark.parametrize("filters, check", [
    (Filters(types=("Movie",)), lambda item: item["type"] == "Movie"),
    (Filters(types=("movie", "TV")), lambda item: item["type"] in {"Movie", "TV"}),
    (Filters(year_from=2005), lambda item: item["year"] is not None and item["year"] >= 2005),
    (Filters(year_to=2001), lambda item: item["year"] is not None and item["year"] <= 2001),
    (Filters(min_score=8.0), lambda item: item["score"] is not None and item["score"] >= 8.0),
    (Filters(genres=("romance", "Drama")), lambda item: {"Romance", "Drama"} <= set(item["genres"])),
])
def test_each_filter_holds(engine: Recommender, filters: Filters, check) -> None:
    for method in (engine.recommend_for_user, ):
        items = method(TEST_USER, n=100, filters=filters)
        assert items and all(check(item) for item in items)
    similar = engine.similar_anime(1, n=100, filters=filters)
    assert all(check(item) for item in similar)


def test_a_filter_nothing_passes_gives_an_empty_list(engine: Recommender) -> None:
    assert engine.recommend_for_user(TEST_USER, filters=Filters(genres=("Mecha", "Romance"))) == []


@pytest.mark.parametrize("filters", [Filters(genres=("Horror",)), Filters(types=("Manga",))])
def test_unknown_genre_or_type_is_refused(engine: Recommender, filters: Filters) -> None:
    with pytest.raises(InvalidRequestError, match="use one of"):
        engine.recommend_for_user(TEST_USER, filters=filters)


# ---------------------------------------------------------------------- similar anime and users
def test_similar_anime_stay_in_their_group_and_exclude_the_anime_itself(engine: Recommender) -> None:
    similar = engine.similar_anime(1, n=5)
    assert set(ids(similar)) == set(GROUP_A_IDS) - {1}
    assert [item["similarity"] for item in similar] == sorted((item["similarity"] for item in similar), reverse=True)
    assert 1 not in ids(engine.similar_anime(1, n=100))
    assert len(engine.similar_anime(1, n=100)) == engine.n_anime - 1


def test_similar_users_stay_in_their_group(engine: Recommender) -> None:
    neighbours = engine.similar_users(TEST_USER, k=7)
    assert len(neighbours) == 7 and TEST_USER not in {user for user, _ in neighbours}
    assert all(1001 <= user <= 1008 for user, _ in neighbours)
    assert np.all(np.diff([similarity for _, similarity in neighbours]) <= 0)


def test_user_preferences_use_the_75th_percentile_of_their_own_ratings(engine: Recommender) -> None:
    # ratings 10, 9, 9, 8, 3 (the 0 is "watched", not a rating): 75th percentile = 9
    assert engine.interactions.threshold(engine.user_index(TEST_USER)) == pytest.approx(9.0)
    assert engine.preferred_anime(TEST_USER) == [(1, 10.0), (6, 9.0), (21, 9.0)]  # best first
    assert {"Action", "Sci-Fi"} <= set(engine.preferred_genres(TEST_USER))


# ---------------------------------------------------------------------- favourites (cold start)
def test_favourites_of_group_b_give_group_b_anime(engine: Recommender) -> None:
    items = engine.recommend_from_favourites([101, 102], n=4)
    assert set(ids(items)) == set(GROUP_B_IDS) - {101, 102}
    assert all(item["reasons"] for item in items)
    assert any("which you liked" in reason for item in items for reason in item["reasons"])


def test_favourites_never_return_the_liked_anime_and_refuse_repeats(engine: Recommender) -> None:
    items = engine.recommend_from_favourites([1, 5], n=100)
    assert not {1, 5} & set(ids(items))
    assert len(items) == engine.n_anime - 2
    with pytest.raises(InvalidRequestError, match="more than once"):  # as the API refuses them
        engine.recommend_from_favourites([1, 1, 5], n=100)


def test_favourites_skip_unknown_anime_and_refuse_only_when_none_is_known(engine: Recommender) -> None:
    assert engine.unknown_anime([1, 999, 5, 998]) == [999, 998]
    with_unknown = engine.recommend_from_favourites([1, 999, 5], n=5)
    assert ids(with_unknown) == ids(engine.recommend_from_favourites([1, 5], n=5))
    with pytest.raises(UnknownAnimeError, match="999"):
        engine.recommend_from_favourites([999, 998])


# ---------------------------------------------------------------------- search
@pytest.mark.parametrize("query, expected_first", [
    ("Cowboy Bebop", 1),          # exact beats prefix ("Cowboy Bebop: The Movie")
    ("cowboy", 1),                # prefix, more members first
    ("BEBOP", 1),                 # substring, case-insensitive
    ("your name.", 104),          # English title
    ("kimi no na wa.", 104),      # original title
    ("  naruto ", 20),            # surrounding whitespace
])
def test_search_ranks_exact_then_prefix_then_substring(engine: Recommender, query: str, expected_first: int) -> None:
    assert ids(engine.search(query))[0] == expected_first


def test_search_orders_by_match_kind_then_popularity(engine: Recommender) -> None:
    # "na": Naruto and Nana start with it (Naruto more popular), Kimi no Na wa. and Clannad contain it
    assert ids(engine.search("na")) == [20, 106, 104, 101]
    assert ids(engine.search("na", limit=2)) == [20, 106]
    assert engine.search("zzz") == []


@pytest.mark.parametrize("query", ["", "x" * 101])
def test_search_refuses_empty_or_long_queries(engine: Recommender, query: str) -> None:
    with pytest.raises(InvalidRequestError):
        engine.search(query)


@pytest.mark.parametrize("query", ["   ", "\x1d", "\t\n"])
def test_search_for_whitespace_finds_nothing(engine: Recommender, query: str) -> None:
    assert engine.search(query) == []


# ---------------------------------------------------------------------- catalogue scoring for evaluation
@pytest.mark.parametrize("method", ["user", "embedding", "hybrid"])
def test_score_catalogue_is_float32_over_the_whole_catalogue_in_unit_range(engine: Recommender, method: str) -> None:
    scores = engine.score_users([engine.user_index(TEST_USER)], method)[0]
    assert scores.dtype == np.float32 and scores.shape == (engine.n_anime,)
    assert scores.min() >= 0.0 and scores.max() <= 1.0 + 1e-6
    if method != "hybrid":  # each component is scaled by its maximum; the hybrid is their weighted mean
        assert scores.max() == pytest.approx(1.0)


def test_score_catalogue_matches_what_serving_ranks_by(engine: Recommender) -> None:
    scores = engine.score_users([engine.user_index(TEST_USER)], "hybrid", 0.7, 0.3)[0]
    items = engine.recommend_for_user(TEST_USER, n=100, user_weight=0.7, content_weight=0.3)
    for item in items:
        assert item["match"] == pytest.approx(scores[engine.anime_index(item["anime_id"])], abs=1e-4)


def test_hybrid_is_the_weighted_mean_of_the_components(engine: Recommender) -> None:
    user = [engine.user_index(TEST_USER)]
    # the tiny model's mix weighs its four components equally (TINY_HYBRID)
    equal = engine.score_users(user, "hybrid")
    expected = sum(engine.score_users(user, name) for name in ("item_item", "ncf", "user", "embedding")) / 4
    np.testing.assert_allclose(equal, expected, atol=1e-6)
    # the sliders tilt the mix's two sides: similar users (ncf, user) 0.25, similar anime (item_item, content) 0.75
    tilted = engine.score_users(user, "hybrid", 0.25, 0.75)
    expected = (0.125 * (engine.score_users(user, "ncf") + engine.score_users(user, "user"))
                + 0.375 * (engine.score_users(user, "item_item") + engine.score_users(user, "embedding")))
    np.testing.assert_allclose(tilted, expected, atol=1e-6)


def test_engine_derives_preferences_from_the_ratings_it_is_given(tiny_model_dir, serving_config) -> None:
    """The evaluator drops the test split before building the engine: held-out anime must not leak in."""
    artifacts = load_model_artifacts(tiny_model_dir)
    ratings = artifacts.user_ratings
    train_only = ModelArtifacts(**{**artifacts.__dict__, "user_ratings": ratings[ratings["split"] != SPLIT_TEST]})
    engine = Recommender(train_only, serving_config)
    known = engine.interactions.profiles([engine.user_index(TEST_USER)]).known_of(0)
    assert 21 not in {int(engine.anime_ids[j]) for j in known}
    assert 21 not in {anime_id for anime_id, _ in engine.preferred_anime(TEST_USER)}
    assert 21 in ids(engine.recommend_for_user(TEST_USER, n=100))


def test_unknown_method_is_refused(engine: Recommender) -> None:
    with pytest.raises(InvalidRequestError):
        engine.score_users([0], "telepathy")


# ---------------------------------------------------------------------- bad input and bad artifacts
@pytest.mark.parametrize("kwargs", [
    {"n": 0}, {"n": 101}, {"user_weight": -1.0}, {"user_weight": float("nan")}, {"content_weight": float("inf")},
    {"user_weight": 0.0, "content_weight": 0.0},
])
def test_bad_parameters_are_refused(engine: Recommender, kwargs: dict) -> None:
    with pytest.raises(InvalidRequestError):
        engine.recommend_for_user(TEST_USER, **kwargs)


def test_unknown_ids_raise_their_own_errors(engine: Recommender) -> None:
    with pytest.raises(UnknownUserError, match="favourites"):
        engine.recommend_for_user(424242)
    with pytest.raises(UnknownAnimeError):
        engine.similar_anime(424242)


def test_a_user_without_ratings_still_gets_recommendations(serving_config) -> None:
    frames = tiny_frames()
    ratings = frames["user_ratings"]
    frames["user_ratings"] = ratings[ratings["user_index"] != 0]
    engine = Recommender(ModelArtifacts(**frames), serving_config)
    items = engine.recommend_for_user(TEST_USER, n=3)
    assert len(items) == 3 and all(item["reasons"] for item in items)


def test_duplicate_ids_are_refused(serving_config) -> None:
    frames = tiny_frames()
    frames["user_ids"] = frames["user_ids"].copy()
    frames["user_ids"][1] = frames["user_ids"][0]
    with pytest.raises(ArtifactError, match="more than once"):
        Recommender(ModelArtifacts(**frames), serving_config)


def test_missing_artifacts_raise_an_artifact_error(tmp_path, serving_config) -> None:
    with pytest.raises(ArtifactError, match="training_pipeline"):
        Recommender.from_folder(tmp_path / "nothing-here", serving_config)


def test_genres_may_come_as_comma_separated_text(tmp_path, serving_config) -> None:
    frames = tiny_frames()
    frames["anime"] = frames["anime"].assign(genres=[", ".join(g) for g in frames["anime"]["genres"]])
    engine = Recommender(ModelArtifacts(**frames), serving_config)
    assert "Slice of Life" in engine.genres and engine.anime(1)["genres"] == ["Action", "Sci-Fi", "Space"]


def test_serving_config_reads_the_yaml_section() -> None:
    config = ServingConfig.from_config(load_config())
    assert config.max_n >= config.default_n >= 1 and config.max_liked >= 1


def test_serving_config_refuses_unknown_and_missing_keys() -> None:
    section = load_config()["serving"]
    with pytest.raises(ConfigError, match="simlar_users"):
        ServingConfig.from_mapping({**section, "simlar_users": 5})
    with pytest.raises(ConfigError, match="missing setting.*max_n"):
        ServingConfig.from_mapping({key: value for key, value in section.items() if key != "max_n"})


def test_written_artifacts_round_trip(tmp_path) -> None:
    folder = write_tiny_artifacts(tmp_path / "model")
    artifacts = load_model_artifacts(folder)
    assert isinstance(artifacts.anime, pd.DataFrame) and len(artifacts.anime) == 12


def test_repeated_rows_count_once_and_keep_the_highest_rating(engine: Recommender, serving_config) -> None:
    frames = tiny_frames()
    ratings = frames["user_ratings"]
    repeats = ratings[ratings["user_index"] == 0].assign(rating=1)  # the test user's rows again, rated 1
    frames["user_ratings"] = pd.concat([repeats, ratings, repeats], ignore_index=True)
    repeated = Recommender(ModelArtifacts(**frames), serving_config)
    assert len(repeated.interactions) == len(engine.interactions)
    user = repeated.user_index(TEST_USER)
    assert repeated.interactions.threshold(user) == pytest.approx(9.0)
    np.testing.assert_allclose(repeated.score_users([user], "hybrid"), engine.score_users([user], "hybrid"), atol=1e-6)


def test_fractional_ratings_take_the_general_sort(serving_config) -> None:
    frames = tiny_frames()
    frames["user_ratings"] = frames["user_ratings"].astype({"rating": np.float32})
    frames["user_ratings"].loc[frames["user_ratings"]["user_index"] == 0, "rating"] += 0.5
    engine = Recommender(ModelArtifacts(**frames), serving_config)
    assert engine.interactions.threshold(engine.user_index(TEST_USER)) == pytest.approx(9.5)  # 10.5, 9.5, 9.5, 8.5, 3.5
    ratings = [rating for _, rating in engine.preferred_anime(TEST_USER)]
    assert ratings == sorted(ratings, reverse=True)


# ---------------------------------------------------------------------- the real training output
@pytest.mark.integration
def test_engine_serves_a_really_trained_model(trained_root) -> None:
    """The artifacts the training pipeline writes (conftest's small real run) load and answer sensibly."""
    from config import paths_config

    engine = Recommender.from_folder(paths_config.model_dir(trained_root), ServingConfig.from_config(load_config()))
    assert engine.n_users > 10 and engine.n_anime > 100 and engine.genres and engine.types
    anime_id = int(engine.anime_ids[0])
    similar = engine.similar_anime(anime_id, n=10)
    assert len(similar) == 10 and anime_id not in ids(similar)
    user_id = int(engine.user_ids[0])
    known = {int(engine.anime_ids[j]) for j in engine.interactions.profiles([0]).known_of(0)}
    items = engine.recommend_for_user(user_id, n=20)
    assert len(items) == 20 and not known & set(ids(items)) and all(item["reasons"] for item in items)
    title = engine.anime(anime_id)["name"]
    assert anime_id in ids(engine.search(title, 5))
    liked = [int(a) for a in engine.anime_ids[:3]]
    assert not set(liked) & set(ids(engine.recommend_from_favourites(liked, n=10)))
    for method in ("user", "embedding", "hybrid"):
        assert engine.score_users([0], method).shape == (1, engine.n_anime)
    # training published each user's nearest users, as many as the carve chose, as the search finds them
    from src.engine.scorers import nearest_user_rows

    table = engine.similar_users_scorer.table
    assert table is not None and table.k == engine.settings.similar_users
    rows, _ = nearest_user_rows(engine.user_embeddings[:5], engine.user_embeddings, table.k, np.arange(5))
    np.testing.assert_array_equal(table.rows[:5], rows)



def test_the_published_nearest_users_are_what_the_search_finds(tmp_path, serving_config) -> None:
    """similar_users.npz, written with the artifacts, holds each user's nearest users as the per-request search
    ranks them (the same cosines, the same order); an engine reading it answers exactly as one that searches."""
    from src.engine.scorers import nearest_user_rows, save_nearest_users

    searching = Recommender.from_folder(write_tiny_artifacts(tmp_path / "searching"), serving_config)
    save_nearest_users(write_tiny_artifacts(tmp_path / "table"), 10)
    reading = Recommender.from_folder(tmp_path / "table", serving_config)
    assert searching.similar_users_scorer.table is None and reading.similar_users_scorer.table.k == 10
    for row in range(searching.n_users):
        vector = searching.user_embeddings[[row]]
        rows, cosines = nearest_user_rows(vector, searching.user_embeddings, 10, np.array([row]))
        np.testing.assert_array_equal(reading.similar_users_scorer.table.rows[row], rows[0])
        np.testing.assert_allclose(reading.similar_users_scorer.table.cosines[row], cosines[0], rtol=1e-6)
        user_id = int(searching.user_ids[row])
        assert reading.similar_users(user_id, 10) == searching.similar_users(user_id, 10)
        assert reading.recommend_for_user(user_id, n=5) == searching.recommend_for_user(user_id, n=5)
    # more neighbours than the table holds: the search answers
    user_id = int(searching.user_ids[0])
    assert reading.similar_users(user_id, 12) == searching.similar_users(user_id, 12)


@pytest.mark.parametrize(("rows", "cosines", "problem"), [
    (np.zeros((3, 2), np.int64), np.zeros((3, 2), np.float32), "one line per user"),
    (None, np.full((0, 0), np.nan, np.float32), "one line per user"),
    ("past the end", None, "user rows from 0"),
    (None, "nan", "finite"),
])
def test_a_damaged_nearest_users_table_is_refused(tmp_path, serving_config, rows, cosines, problem) -> None:
    from src.engine.scorers import save_nearest_users

    folder = write_tiny_artifacts(tmp_path / "model")
    save_nearest_users(folder, 4)
    with np.load(folder / "similar_users.npz") as stored:
        good_rows, good_cosines = stored["rows"], stored["cosines"]
    if isinstance(rows, str):
        rows = good_rows.copy()
        rows[0, 0] = len(good_rows)
    if isinstance(cosines, str):
        cosines = good_cosines.copy()
        cosines[1, 1] = np.nan
    np.savez(folder / "similar_users.npz", rows=good_rows if rows is None else rows,
             cosines=good_cosines if cosines is None else cosines)
    with pytest.raises(ArtifactError, match=problem):
        Recommender.from_folder(folder, serving_config)


def _ratings(seed: int, repeats: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = rng.choice(30 * 40, size=300, replace=False)
    users, anime = cells // 40, cells % 40
    if repeats:  # the same (user, anime) again, with another rating
        users, anime = np.concatenate([users, users[:7]]), np.concatenate([anime, anime[:7]])
    return pd.DataFrame({"user_index": users, "anime_index": anime, "rating": rng.integers(0, 11, len(users)),
                         "split": np.zeros(len(users), np.int8)})


@pytest.mark.parametrize("repeats", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_rows_already_best_first_index_as_rows_in_any_order(seed: int, repeats: bool) -> None:
    """The server skips sorting rows that are already best first and unrepeated (training writes them so): the
    index is the same as from the rows shuffled, repeats included (which always take the sorting path)."""
    from src.engine.interactions import Interactions
    from src.store.artifacts import best_first_order

    shuffled = _ratings(seed, repeats).sample(frac=1.0, random_state=seed)
    order = best_first_order(*(shuffled[c].to_numpy(np.int64) for c in ("user_index", "anime_index")),
                             shuffled["rating"].to_numpy(np.float64), 40)
    ordered = shuffled.iloc[order]
    fast, sorted_here = Interactions(ordered, 30, 40, 75), Interactions(shuffled, 30, 40, 75)
    for name in ("known", "preferred"):
        for part in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(getattr(fast, name), part), getattr(getattr(sorted_here, name), part))
    np.testing.assert_array_equal(fast.thresholds, sorted_here.thresholds)
    assert len(fast) == 300


def test_repeats_are_found_across_blocks_of_users() -> None:
    from src.engine.interactions import _has_repeats

    users, anime = np.array([0, 0, 1, 3, 3, 5]), np.array([1, 2, 1, 0, 4, 4])
    for cells in (1, 5, 2**20):  # one user a block, a few, all of them
        assert not _has_repeats(users, anime, 6, 5, cells_per_block=cells)
        assert _has_repeats(np.append(users, 5), np.append(anime, 4), 6, 5, cells_per_block=cells)
        assert not _has_repeats(np.append(users, 5), np.append(anime, 3), 6, 5, cells_per_block=cells)
