"""No rating lost: every row read is in the published model or counted under a named reason (src/training/ledger.py).

The conservation test on the real embedded sample recomputes the kept rows from the raw file with pandas alone
(none of the pipeline's code), and compares them with what the served model holds, pair by pair.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from config import paths_config
from src.data.files import read_ids
from src.data.processing import process, read_interactions
from src.data.splits import NEW_ANIME, NEWCOMER
from src.store.artifacts import load_model_artifacts
from src.training.ledger import LedgerError, check_published_rows
from tests.conftest import SAMPLE, run_pipeline, small_training_config
from tests.raw_data import write_anime_2020, write_ratings


def published_pairs(model_dir: Path) -> pd.DataFrame:
    """(user_id, anime_id, rating) of every row the served model holds, as serving reads them."""
    ratings = np.load(model_dir / "user_ratings.npy")
    user_ids = read_ids(model_dir / "user_ids.json")
    anime_ids = np.array([record["anime_id"] for record in json.loads((model_dir / "anime.json").read_text())])
    return pd.DataFrame({"user_id": user_ids[ratings["user_index"]], "anime_id": anime_ids[ratings["anime_index"]],
                         "rating": ratings["rating"].astype(int)})


def test_the_ledger_counts_every_row_under_one_reason(tmp_path, config):
    raw = tmp_path / "raw"
    write_anime_2020(raw, count=30)
    rows = [(1, a, 7) for a in range(1, 12)]  # kept
    rows += [(1, 5, 9)]  # a later duplicate of (1, 5): the earlier row is dropped
    rows += [(1, 999, 8)]  # an anime the metadata lacks
    rows += [(2, a, 6) for a in range(1, 4)]  # a user below the threshold of 5 rated anime
    rows += [(3, a, 5) for a in range(1, 8)] + [(3, 20, -1)]  # kept, one of them watched but unrated
    lines = [f"{u},{a},{r}" for u, a, r in rows] + ["4,1", "x,2,3", "5,6,11"]  # three malformed rows
    (raw / "rating.csv").write_text("\n".join(["user_id,anime_id,rating", *lines]) + "\n", encoding="utf-8")
    config["evaluation"].update(newcomer_fraction=0.0, new_anime_fraction=0.0)
    config["data"]["max_malformed_share"] = 0.2
    ledger = process(config, raw_dir=raw, destination=tmp_path / "processed", min_user_ratings=5)["ledger"]
    assert ledger["read"] == len(rows) + 3
    assert ledger["dropped"] == {"malformed": 3, "below_user_threshold": 3, "unknown_anime": 1, "duplicate": 1}
    assert ledger["kept"] == 11 + 8 == len(read_interactions(tmp_path / "processed"))
    assert sum(ledger["malformed"].values()) == 3


@pytest.fixture(scope="module")
def held_out_pipeline(tmp_path_factory, base_config) -> Path:
    """The whole pipeline through the CLI on hand-made rows where newcomers have rated new anime."""
    workspace = tmp_path_factory.mktemp("held-out")
    raw, root = workspace / "raw", workspace / "artifacts"
    write_anime_2020(raw, count=40)
    rng = np.random.default_rng(5)
    rows = [(user, int(anime), int(rng.integers(1, 11))) for user in range(1, 61)
            for anime in rng.choice(np.arange(1, 41), 25, replace=False)]
    write_ratings(raw, rows)
    config = small_training_config(base_config)
    config["evaluation"].update(newcomer_fraction=0.2, new_anime_fraction=0.2)
    (workspace / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run_pipeline("--raw-dir", str(raw), "--min-user-ratings", "10", "--epochs", "1",
                          "--config", str(workspace / "config.yaml"), artifacts=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.mark.integration
def test_a_newcomers_rating_of_a_new_anime_reaches_the_published_model(held_out_pipeline):
    processed = paths_config.processed_dir(held_out_pipeline)
    interactions = read_interactions(processed)
    catalogue_ids = pd.read_parquet(processed / "anime.parquet")["anime_id"].to_numpy()
    both = interactions[interactions["held_out"] == NEWCOMER | NEW_ANIME]
    assert len(both) > 0, "the fixture must have newcomers' ratings of new anime"
    expected = {(int(u), int(catalogue_ids[a]), int(r)) for u, a, r in both[["user_id", "anime_index", "rating"]]
                .itertuples(index=False)}
    published = set(published_pairs(paths_config.model_dir(held_out_pipeline)).itertuples(index=False, name=None))
    assert expected <= published
    manifest = load_model_artifacts(paths_config.model_dir(held_out_pipeline)).manifest
    assert manifest["ledger"]["published"] == manifest["ledger"]["kept"] == len(interactions)
    assert manifest["ledger"]["not_published"] == {}
    assert manifest["data"]["ledger"]["held_out"]["newcomers_new_anime"] == len(both)


@pytest.mark.integration
def test_the_evaluation_model_holds_the_rows_in_no_held_out_set_and_counts_the_rest(held_out_pipeline):
    ledger = load_model_artifacts(paths_config.evaluation_model_dir(held_out_pipeline)).manifest["ledger"]
    held_out = ledger["held_out"]
    assert ledger["not_published"] == {f"held_out_{name}": count for name, count in held_out.items() if count}
    assert ledger["published"] == ledger["kept"] - sum(held_out.values())
    assert ledger["read"] == ledger["published"] + sum(ledger["dropped"].values()) + sum(held_out.values())


@pytest.mark.integration
@pytest.mark.parametrize("damage, words", [("drop", "1 missing"), ("rating", "1 with another rating"),
                                           ("repeat", "1 repeated")])
def test_a_model_missing_or_changing_a_kept_row_is_refused_in_one_line(held_out_pipeline, tmp_path, damage, words):
    folder = tmp_path / "model"
    shutil.copytree(paths_config.model_dir(held_out_pipeline), folder)
    ratings = np.load(folder / "user_ratings.npy")
    if damage == "drop":
        ratings = ratings[1:]
    elif damage == "rating":
        ratings["rating"][0] = 10 if ratings["rating"][0] != 10 else 9
    else:
        ratings = np.concatenate([ratings, ratings[:1]])
    np.save(folder / "user_ratings.npy", ratings)
    with pytest.raises(LedgerError) as error:
        check_published_rows(folder, paths_config.processed_dir(held_out_pipeline), every_rating=True)
    message = str(error.value)
    assert words in message and "nothing was published" in message and "\n" not in message


# ----------------------------------------------------------------------------------------- the real embedded sample
def kept_rows_from_raw(min_user_ratings: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows a correct pipeline keeps, recomputed from the raw files with pandas alone: users with at least
    ``min_user_ratings`` rated rows, anime the metadata has, the last row of a repeated pair; -1 means unrated."""
    raw = pd.read_csv(SAMPLE / "rating.csv.gz")
    raw["rating"] = raw["rating"].clip(lower=0)
    metadata_ids = pd.read_csv(SAMPLE / "anime.csv.zip", usecols=["MAL_ID"])["MAL_ID"]
    rated = raw[raw["rating"] > 0].groupby("user_id").size()
    active = raw["user_id"].isin(rated[rated >= min_user_ratings].index)
    known = raw["anime_id"].isin(metadata_ids)
    kept = raw[active & known].drop_duplicates(["user_id", "anime_id"], keep="last")
    dropped = {"below_user_threshold": int((~active).sum()), "unknown_anime": int((active & ~known).sum()),
               "duplicate": int((active & known).sum()) - len(kept), "malformed": 0}
    return kept, dropped


@pytest.fixture(scope="module")
def refitted_root(trained_root, tmp_path_factory, base_config, monkeypatch_module) -> Path:
    """The served model of the pipeline's refit, from the shared trained root (processed on the real embedded sample
    at 400 ratings; its model is the evaluation model there)."""
    from src.training.refit import refit

    root = tmp_path_factory.mktemp("refit")
    (root / "processed").symlink_to(paths_config.processed_dir(trained_root))
    paths_config.evaluation_model_dir(root).parent.mkdir(parents=True)
    paths_config.evaluation_model_dir(root).symlink_to(paths_config.model_dir(trained_root).resolve())
    monkeypatch_module.setenv("ANIME_ARTIFACTS_DIR", str(root))
    refit(small_training_config(base_config), epochs=1)
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.integration
def test_the_served_model_holds_every_kept_raw_row_pair_by_pair(refitted_root):
    summary = json.loads((paths_config.processed_dir(refitted_root) / "summary.json").read_text())
    kept, dropped = kept_rows_from_raw(summary["min_user_ratings"])
    published = published_pairs(paths_config.model_dir(refitted_root))
    merged = kept.merge(published, on=["user_id", "anime_id"], how="outer", suffixes=("_raw", "_served"),
                        indicator=True)
    lost = merged[merged["_merge"] == "left_only"]
    extra = merged[merged["_merge"] == "right_only"]
    assert lost.empty, f"{len(lost)} kept raw rows are not in the served model, e.g. {lost.head(3).to_dict('records')}"
    assert extra.empty, f"{len(extra)} served rows are not kept raw rows"
    assert (merged["rating_raw"] == merged["rating_served"]).all()
    assert len(published) == len(kept)
    ledger = load_model_artifacts(paths_config.model_dir(refitted_root)).manifest["ledger"]
    assert ledger["dropped"] == dropped and ledger["kept"] == ledger["published"] == len(kept)
    assert ledger["read"] == len(pd.read_csv(SAMPLE / "rating.csv.gz"))


@pytest.mark.integration
def test_nothing_a_former_newcomer_rated_is_recommended_back(refitted_root, serving_config):
    from src.engine.recommender import Recommender

    interactions = read_interactions(paths_config.processed_dir(refitted_root))
    catalogue_ids = pd.read_parquet(paths_config.processed_dir(refitted_root) / "anime.parquet")["anime_id"].to_numpy()
    both = interactions[interactions["held_out"] == NEWCOMER | NEW_ANIME]
    assert len(both) > 0
    engine = Recommender.from_folder(paths_config.model_dir(refitted_root), serving_config)
    for user_id in both["user_id"].unique()[:10]:
        listed = set(catalogue_ids[interactions.loc[interactions["user_id"] == user_id, "anime_index"]].tolist())
        shown = {item["anime_id"] for item in engine.recommend_for_user(int(user_id), n=100)}
        assert not shown & listed, f"user {user_id} is recommended anime already on their list"
