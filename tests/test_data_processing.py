"""Processing: unrated rows, the activity filter, scaling, id encoding, splits and the holdout."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from src.data.processing import process, read_interactions
from src.data.splits import (
    SPLIT_TEST,
    SPLIT_TRAIN,
    SPLIT_VALIDATION,
    assign_splits,
    held_out_counts,
    held_out_flags,
    new_anime_view,
    newcomer_view,
    split_rows,
    training_view,
)
from src.errors import UserError
from tests.raw_data import write_anime_2020, write_ratings


def make_raw(folder, rows, anime_count=30):
    write_anime_2020(folder, count=anime_count)
    write_ratings(folder, rows)
    return folder


def hand_made_rows():
    """User 10 rates 3 anime and marks 6 watched-unrated (-1); user 20 rates 5; user 30 rates 25, leaves 2 unrated."""
    rows = [(10, a, 8) for a in (1, 2, 3)] + [(10, a, -1) for a in range(4, 10)]
    rows += [(20, a, 1 + a) for a in range(1, 6)]
    rows += [(30, a, 1 + a % 10) for a in range(1, 26)] + [(30, 26, -1), (30, 27, -1)]
    return rows


def run_process(tmp_path, config, rows, min_user_ratings, **settings):
    """Process hand-made rows; the cold-start holdouts (newcomers, new anime) are off unless ``settings`` set them."""
    raw = make_raw(tmp_path / "raw", rows)
    config["evaluation"].update(newcomer_fraction=0.0, new_anime_fraction=0.0)
    for section, values in settings.items():
        config[section].update(values)
    summary = process(config, raw_dir=raw, destination=tmp_path / "processed", min_user_ratings=min_user_ratings)
    user_ids = np.array(json.loads((tmp_path / "processed" / "user_ids.json").read_text()))
    anime_ids = json.loads((tmp_path / "processed" / "anime_ids.json").read_text())
    table = training_view(read_interactions(tmp_path / "processed"), user_ids)
    return summary, table, user_ids, np.array(anime_ids)


def test_unrated_rows_do_not_count_towards_the_filter(tmp_path, config):
    # user 10 has 9 interactions but only 3 ratings: below a threshold of 5
    summary, table, user_ids, _ = run_process(tmp_path, config, hand_made_rows(), 5)
    assert sorted(user_ids) == [20, 30]
    assert summary["users"] == 2


def test_unrated_rows_are_kept_as_interactions_but_never_targets_or_test(tmp_path, config):
    _, table, user_ids, anime_ids = run_process(tmp_path, config, hand_made_rows(), 1)
    unrated = table[table["rating"] == 0]
    assert len(unrated) == 8  # six of user 10, two of user 30
    assert (unrated["split"] == SPLIT_TRAIN).all()
    assert set(table["rating"]) <= set(range(0, 11))
    assert not (table["rating"] < 0).any()


def test_encoding_round_trip(tmp_path, config):
    rows = hand_made_rows()
    _, table, user_ids, anime_ids = run_process(tmp_path, config, rows, 1)
    decoded = {(int(user_ids[u]), int(anime_ids[a]), int(r)) for u, a, r in
               table[["user_index", "anime_index", "rating"]].itertuples(index=False)}
    assert decoded == {(u, a, max(r, 0)) for u, a, r in rows}
    assert list(user_ids) == sorted(user_ids) and list(anime_ids) == sorted(anime_ids)
    assert table["user_index"].dtype == np.int32 and table["anime_index"].dtype == np.int32


def test_holdout_is_twenty_percent_of_each_users_rated_anime(tmp_path, config):
    _, table, user_ids, _ = run_process(tmp_path, config, hand_made_rows(), 1, processing={"validation_fraction": 0.0})
    test_per_user = table[table["split"] == SPLIT_TEST].groupby("user_index").size()
    by_id = dict(zip(user_ids[test_per_user.index], test_per_user.to_numpy(), strict=True))
    assert by_id == {10: 1, 20: 1, 30: 5}  # floor(0.2 * n), at least one: 3 -> 1, 5 -> 1, 25 -> 5


def test_no_holdout_when_the_fraction_is_zero(tmp_path, config):
    _, table, _, _ = run_process(tmp_path, config, hand_made_rows(), 1, evaluation={"holdout_fraction": 0.0})
    assert not (table["split"] == SPLIT_TEST).any()


def test_splits_are_deterministic_and_depend_on_the_seed(tmp_path, config):
    rows = [(u, a, 1 + (u * a) % 10) for u in range(40) for a in range(1, 30)]
    first = run_process(tmp_path / "a", config, rows, 1)[1]
    second = run_process(tmp_path / "b", config, rows, 1)[1]
    pd.testing.assert_frame_equal(first, second)
    config["seed"] = 7
    third = run_process(tmp_path / "c", config, rows, 1)[1]
    assert not first.sort_values(["user_index", "anime_index"])["split"].reset_index(drop=True).equals(
        third.sort_values(["user_index", "anime_index"])["split"].reset_index(drop=True))


def test_held_out_pairs_never_reach_training(tmp_path, config):
    rows = [(u, a, 1 + (u + a) % 10) for u in range(30) for a in range(1, 30)]
    _, table, _, _ = run_process(tmp_path, config, rows, 1, processing={"validation_fraction": 0.1})
    from src.training.train import prepare_training_data

    data = prepare_training_data(config, tmp_path / "processed")
    test_pairs = set(map(tuple, table.loc[table["split"] == SPLIT_TEST, ["user_index", "anime_index"]].to_numpy()))
    trained = set(zip(*data.train_targets.nonzero(), strict=True))
    validated = set(zip(*data.validation_targets.nonzero(), strict=True))
    assert test_pairs and not (test_pairs & trained) and not (test_pairs & validated)
    assert len(trained) == (table["split"] == SPLIT_TRAIN).sum()  # rated and watched-unrated rows are targets
    assert (table["split"] == SPLIT_VALIDATION).sum() > 0


def test_assign_splits_only_holds_out_rated_rows():
    users = np.repeat(np.arange(50, dtype=np.int32), 20)
    rating = np.tile(np.array([0] * 5 + list(range(1, 11)) + [9] * 5, dtype=np.int8), 50)
    split = assign_splits(users, rating, 0.2, 0.1, np.random.default_rng(0))
    assert (split[rating == 0] == SPLIT_TRAIN).all()
    assert (np.bincount(users[split == SPLIT_TEST]) == 3).all()  # floor(0.2 * 15 rated)


def test_split_rows_decides_every_held_out_set_at_once():
    users = np.repeat(np.arange(40, dtype=np.int32), 29)
    anime = np.tile(np.arange(29, dtype=np.int32), 40)
    rating = (1 + (users * anime) % 10).astype(np.int8)
    fractions = {"holdout_fraction": 0.2, "validation_fraction": 0.1, "newcomer_fraction": 0.25,
                 "new_anime_fraction": 0.2}
    splits = split_rows(users, anime, rating, 40, 29, **fractions, rng=np.random.default_rng(0))
    newcomer = ~splits.model_users
    assert newcomer.sum() == 10 and splits.new_anime.sum() == 5  # floor(0.25 * 40), floor(0.2 * 29)
    np.testing.assert_array_equal(splits.held_out, held_out_flags(newcomer[users], splits.new_anime[anime]))
    assert (splits.split[splits.held_out > 0] == SPLIT_TRAIN).all()  # the per-user holdout is the model rows' only
    model_split = splits.split[splits.held_out == 0]
    assert (model_split == SPLIT_TEST).any() and (model_split == SPLIT_VALIDATION).any()
    assert splits.counts == held_out_counts(splits.held_out)
    assert sum(splits.counts.values()) == np.count_nonzero(splits.held_out)
    # no test holdout, no evaluation: nothing is held out as newcomers or new anime either
    unevaluated = split_rows(users, anime, rating, 40, 29, **{**fractions, "holdout_fraction": 0.0},
                             rng=np.random.default_rng(0))
    assert not unevaluated.held_out.any() and unevaluated.model_users.all() and not unevaluated.new_anime.any()
    assert not (unevaluated.split == SPLIT_TEST).any()


def test_ratings_weigh_a_users_targets(config):
    from src.training.train import user_targets

    rows = pd.DataFrame({"user_index": [0, 0, 0], "anime_index": [0, 1, 2], "rating": [1, 10, 0]})
    targets = user_targets(rows, 1, 3, float(config["training"]["unrated_weight"])).toarray()
    np.testing.assert_allclose(targets, [[0.1, 1.0, config["training"]["unrated_weight"]]])
    assert targets.dtype == np.float32


def test_no_users_left_explains_and_suggests_a_threshold(tmp_path, config):
    with pytest.raises(UserError) as error:
        run_process(tmp_path, config, hand_made_rows(), 400)
    message = str(error.value)
    assert "no user has at least 400 rated anime" in message
    assert "the most by one user is 25" in message and "try --min-user-ratings" in message


def test_duplicate_pairs_keep_the_last_rating(tmp_path, config):
    rows = [(1, 1, 3), (1, 2, 5), (1, 1, 9), (2, 1, 4), (2, 2, 4)]
    summary, table, user_ids, anime_ids = run_process(tmp_path, config, rows, 1, evaluation={"holdout_fraction": 0.0})
    assert summary["duplicates_dropped"] == 1
    row = table[(user_ids[table["user_index"]] == 1) & (anime_ids[table["anime_index"]] == 1)]
    assert row["rating"].tolist() == [9]


def test_ratings_for_anime_without_metadata_are_dropped_and_counted(tmp_path, config):
    rows = [(1, a, 7) for a in range(1, 6)] + [(1, 999, 8)]
    summary, _, _, anime_ids = run_process(tmp_path, config, rows, 1)
    assert 999 not in anime_ids and summary["rows_with_unknown_anime"] == 1


def test_anime_table_is_aligned_with_the_anime_index(tmp_path, config):
    run_process(tmp_path, config, hand_made_rows(), 1)
    anime = pd.read_parquet(tmp_path / "processed" / "anime.parquet")
    anime_ids = json.loads((tmp_path / "processed" / "anime_ids.json").read_text())
    # the whole metadata: the model's anime first, in anime index order, then the never-rated ones by id
    assert anime["anime_id"].tolist()[:len(anime_ids)] == anime_ids
    rest = anime["anime_id"].tolist()[len(anime_ids):]
    assert rest == sorted(rest) and len(anime) == 30 and not set(rest) & set(anime_ids)


def test_newcomers_and_new_anime_are_held_out_of_training_entirely(tmp_path, config):
    rows = [(u, a, 1 + (u * a) % 10) for u in range(40) for a in range(1, 30)]
    summary, table, user_ids, anime_ids = run_process(tmp_path, config, rows, 1,
                                                      evaluation={"newcomer_fraction": 0.25, "new_anime_fraction": 0.2})
    interactions = read_interactions(tmp_path / "processed")
    newcomers, new_anime = newcomer_view(interactions), new_anime_view(interactions, user_ids)
    catalogue = pd.read_parquet(tmp_path / "processed" / "anime.parquet")
    assert summary["newcomers"] == 10 and summary["new_anime"] == 5  # floor(0.25 * 40), floor(0.2 * 29)
    assert not set(newcomers["user_id"]) & set(user_ids.tolist())  # newcomers are not model users
    held_anime = set(catalogue["anime_id"].to_numpy()[new_anime["anime_index"]])
    assert len(held_anime) == 5 and not held_anime & set(anime_ids.tolist())  # new anime are not model anime
    assert (new_anime["anime_index"] >= len(anime_ids)).all() and (table["anime_index"] < len(anime_ids)).all()
    # a newcomer's rating of a new anime is in the newcomer view (their whole list), not in the known users' one
    assert (newcomers["anime_index"] >= len(anime_ids)).any()
    assert catalogue["anime_id"].tolist()[:len(anime_ids)] == anime_ids.tolist()  # the model's anime come first
    features = np.load(tmp_path / "processed" / "content_features.npy")
    assert features.shape[0] == len(catalogue)  # content features for every anime of the metadata
