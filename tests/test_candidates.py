"""Candidates computed at publish (src/engine/candidates.py): one ranking, proved.

On a really trained model of the embedded sample, for every known user and every anime, the list served from the
candidates equals the live ranking (ties included: the items, their order, scores and reasons), unfiltered and
filtered, whether the online stage answered or fell back to live scoring. Live scoring runs on one BLAS thread, as
under gunicorn (gunicorn.conf.py): the tables hold the scores of that arithmetic.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from config import paths_config
from config.loader import load_config
from config.settings import ServingConfig
from src.engine.candidates import (
    FILES,
    META_FILE,
    REASON_FILES,
    build_candidates,
    drop_table,
    fingerprint,
    load_candidates,
    verify_candidates,
    write_candidates,
)
from src.engine.catalogue import Filters
from src.engine.recommender import SERVED_FROM, Recommender
from src.errors import ArtifactError
from src.store.registry import resolve_model_dir

pytestmark = pytest.mark.integration

FILTERS = [Filters(genres=("Action",)), Filters(genres=("Romance",), types=("TV",), min_score=7.0),
           Filters(year_from=2010, year_to=2015), Filters(types=("Movie",)), Filters(include_adult=True)]


@pytest.fixture(scope="module")
def serving() -> ServingConfig:
    return ServingConfig.from_config(load_config())


@pytest.fixture(scope="module")
def model_folder(trained_root: Path) -> Path:
    return resolve_model_dir(paths_config.model_dir(trained_root))


@pytest.fixture(scope="module")
def served(model_folder: Path, serving: ServingConfig) -> Recommender:
    engine = Recommender.from_folder(model_folder, serving)
    assert engine.candidates is not None, "the published model must carry its candidates"
    return engine


@pytest.fixture(scope="module")
def live(served: Recommender) -> Recommender:
    engine = copy.copy(served)
    engine.candidates = None
    return engine


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(1):
        yield


def _answer(call, *args, **kwargs) -> tuple[list[dict], str]:
    items = call(*args, **kwargs)
    return items, SERVED_FROM.get()


def test_the_published_model_carries_its_candidates_as_configured(model_folder: Path, served, serving) -> None:
    meta = json.loads((model_folder / META_FILE).read_text(encoding="utf-8"))
    assert meta["users_k"] == serving.candidates_per_user and meta["anime_k"] == serving.candidates_per_anime
    assert meta["fingerprint"] == fingerprint(serving, served.manifest.get("hybrid"))
    assert served.candidates.users.rows.shape == (served.n_users, serving.candidates_per_user)
    assert served.candidates.anime.rows.shape == (served.n_anime, serving.candidates_per_anime)
    for table in (served.candidates.users.rows, served.candidates.users.reasons, served.candidates.anime.scores):
        assert isinstance(table.base, np.memmap), "shared by the workers, not copied into each"
    assert served.candidates.users.reasons.shape == served.candidates.users.rows.shape
    assert served.candidates.users.similar_users == served.settings.similar_users


def test_every_known_user_gets_the_live_list_from_the_candidates(served, live) -> None:
    for n in (10, 100):
        sources = []
        for user in served.user_ids.tolist():
            items, source = _answer(served.recommend_for_user, user, n)
            assert items == live.recommend_for_user(user, n), (user, n)
            sources.append(source)
        if n == 10:
            assert set(sources) == {"candidates"}, "an unfiltered default list never needs live scoring"


def test_every_anime_gets_its_live_similar_anime_from_the_candidates(served, live) -> None:
    sources = []
    for anime in served.anime_ids.tolist():
        items, source = _answer(served.similar_anime, anime)
        assert items == live.similar_anime(anime), anime
        sources.append(source)
    assert sources.count("candidates") == len(sources)


@pytest.mark.parametrize("filters", FILTERS, ids=["action", "romance-tv-7", "2010-2015", "movies", "adult"])
def test_filtered_lists_equal_the_live_ones_from_candidates_or_fallback(served, live, filters) -> None:
    sources = {"candidates": 0, "live": 0}
    for user in served.user_ids.tolist():
        for n in (10, 100):
            items, source = _answer(served.recommend_for_user, user, n, filters=filters)
            assert items == live.recommend_for_user(user, n, filters=filters), (user, n, filters)
            sources[source] += 1
    for anime in served.anime_ids[::7].tolist():
        items, source = _answer(served.similar_anime, anime, 10, filters)
        assert items == live.similar_anime(anime, 10, filters), (anime, filters)
        sources[source] += 1
    assert sources["candidates"] > 0


def test_a_filter_that_exhausts_the_candidates_falls_back_to_live_scoring(served, live) -> None:
    small = copy.copy(served)
    small.candidates = build_candidates(served, 5, 5)  # five each: a filter or a long list runs them dry
    user, anime = int(served.user_ids[0]), int(served.anime_ids[0])
    items, source = _answer(small.recommend_for_user, user, 3)
    assert source == "candidates" and items == live.recommend_for_user(user, 3)
    items, source = _answer(small.recommend_for_user, user, 10)
    assert source == "live" and items == live.recommend_for_user(user, 10)
    items, source = _answer(small.similar_anime, anime, 20, Filters(types=("TV",)))
    assert source == "live" and items == live.similar_anime(anime, 20, Filters(types=("TV",)))
    items, source = _answer(small.recommend_for_user, user, 3, 0.9, 0.1)  # other weights: other scores
    assert source == "live" and items == live.recommend_for_user(user, 3, 0.9, 0.1)


def test_the_publish_check_compares_a_sample_with_live_and_refuses_wrong_tables(served) -> None:
    verify_candidates(served)
    broken = copy.copy(served)
    users = served.candidates.users
    swapped = np.array(users.rows)
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # the first two of every user's candidates in the wrong order
    broken.candidates = dataclasses.replace(served.candidates, users=dataclasses.replace(users, rows=swapped))
    with pytest.raises(ArtifactError, match="do not give user"):
        verify_candidates(broken)
    reasons = np.array(users.reasons)
    reasons["count"] += 1  # every stored count of similar users one off
    broken.candidates = dataclasses.replace(served.candidates, users=dataclasses.replace(users, reasons=reasons))
    with pytest.raises(ArtifactError, match="do not give user"):
        verify_candidates(broken)
    titles = served.candidates.anime
    flipped = np.array(titles.reasons)
    flipped["story_alike"] = ~flipped["story_alike"]  # every story said alike where it is not, and the reverse
    broken.candidates = dataclasses.replace(served.candidates, anime=dataclasses.replace(titles, reasons=flipped))
    with pytest.raises(ArtifactError, match="do not give anime"):
        verify_candidates(broken)


def test_a_model_published_before_the_reasons_were_stored_words_them_live(model_folder, serving, live,
                                                                            tmp_path) -> None:
    folder = _copy(model_folder, tmp_path)
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    for name in ("users_reasons", "anime_reasons", "reasons_similar_users"):
        del meta[name]
    (folder / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    for file in REASON_FILES.values():
        (folder / file).unlink()
    older = Recommender.from_folder(folder, serving)
    assert older.candidates.users.reasons is None and older.candidates.anime.reasons is None
    for user in older.user_ids[::25].tolist():
        items, source = _answer(older.recommend_for_user, user)
        assert source == "candidates" and items == live.recommend_for_user(user), user
    for anime in older.anime_ids[::50].tolist():
        items, source = _answer(older.similar_anime, anime)
        assert source == "candidates" and items == live.similar_anime(anime), anime


def _copy(folder: Path, tmp_path: Path) -> Path:
    copied = tmp_path / "model"
    shutil.copytree(folder, copied)
    return copied


def test_tables_made_for_other_serving_settings_are_not_used(model_folder, served, serving, tmp_path) -> None:
    other = dataclasses.replace(serving, unrated_weight=serving.unrated_weight + 0.1)
    assert load_candidates(model_folder, other, served.manifest.get("hybrid"), served.n_users, served.n_anime) is None
    assert Recommender.from_folder(model_folder, other).candidates is None  # served live, correctly
    hybrid = served.manifest["hybrid"]
    changed = {**hybrid, "similar_users": hybrid["similar_users"] + 1}  # a model folder changed since publish
    assert load_candidates(model_folder, serving, changed, served.n_users, served.n_anime) is None
    folder = _copy(model_folder, tmp_path)
    (folder / META_FILE).unlink()
    assert load_candidates(folder, serving, served.manifest.get("hybrid"), served.n_users, served.n_anime) is None


@pytest.mark.parametrize("damage, words", [
    (lambda rows: rows[:-1], "must hold"),
    (lambda rows: np.where(rows == rows[0, 0], 60_000, rows).astype(rows.dtype), "outside the catalogue"),
    (lambda rows: rows.astype(np.float64), "wrong types"),
], ids=["a row short", "outside the catalogue", "float ids"])
def test_a_damaged_table_fails_the_load_checks(model_folder, served, serving, tmp_path, damage, words) -> None:
    folder = _copy(model_folder, tmp_path)
    path = folder / FILES["users"][0]
    np.save(path, damage(np.load(path)))
    with pytest.raises(ArtifactError, match=words):
        load_candidates(folder, serving, served.manifest.get("hybrid"), served.n_users, served.n_anime)


def _kind_out_of_range(reasons: np.ndarray) -> np.ndarray:
    reasons["kind"][0, 0] = 7
    return reasons


def _too_many_similar_users(reasons: np.ndarray) -> np.ndarray:
    reasons["count"][0, 0] = 60_000
    return reasons


def _names_nothing(reasons: np.ndarray) -> np.ndarray:
    reasons["source"][reasons["kind"] > 0] = -1
    return reasons


def _names_beyond_the_preferred(reasons: np.ndarray) -> np.ndarray:
    reasons["source"][reasons["kind"] > 0] = 40_000
    return reasons


@pytest.mark.parametrize("damage, words", [
    (lambda reasons: reasons[:-1], "one reason record per candidate"),
    (lambda reasons: reasons["count"].copy(), "one reason record per candidate"),
    (_kind_out_of_range, "name no anime"), (_too_many_similar_users, "more similar users"),
    (_names_nothing, "name no anime"), (_names_beyond_the_preferred, "name no anime"),
], ids=["a row short", "counts alone", "unknown kind", "more than asked", "a kind without its anime",
        "an anime past the preferred"])
def test_a_damaged_reasons_table_fails_the_load_checks(model_folder, served, serving, tmp_path, damage,
                                                       words) -> None:
    folder = _copy(model_folder, tmp_path)
    np.save(folder / REASON_FILES["users"], damage(np.load(folder / REASON_FILES["users"])))
    with pytest.raises(ArtifactError, match=words):
        Recommender.from_folder(folder, serving)


def test_written_tables_read_back_the_same(served, serving, tmp_path) -> None:
    tables = build_candidates(served, 7, 3)
    write_candidates(tmp_path, tables, serving, served.manifest.get("hybrid"))
    read = load_candidates(tmp_path, serving, served.manifest.get("hybrid"), served.n_users, served.n_anime)
    assert np.array_equal(read.users.rows, tables.users.rows) and np.array_equal(read.anime.scores,
                                                                                  tables.anime.scores)
    assert np.array_equal(read.users.reasons, tables.users.reasons)
    assert np.array_equal(read.anime.reasons, tables.anime.reasons) and read.anime.reasons["story_alike"].any()
    assert read.users.k == 7 and read.anime.k == 3 and read.users.similar_users == tables.users.similar_users > 0
    assert drop_table(tmp_path, "users") and not (tmp_path / REASON_FILES["users"]).exists()
    assert load_candidates(tmp_path, serving, served.manifest.get("hybrid"), served.n_users, served.n_anime).users \
        is None
