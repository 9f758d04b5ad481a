"""Ingestion and readers: every supported file format, compression and column spelling, on real samples."""
from __future__ import annotations

import gzip
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.data.ingestion import describe_raw_folder, ingest
from src.data.processing import read_anime_table, read_ratings
from src.errors import UserError
from tests.conftest import FIXTURES, SAMPLE
from tests.raw_data import write_anime_2020, write_ratings


def compress(path: Path, kind: str) -> Path:
    if kind == "gz":
        target = path.with_name(path.name + ".gz")
        with path.open("rb") as source, gzip.open(target, "wb") as sink:
            shutil.copyfileobj(source, sink)
    elif kind == "zip":
        target = path.with_name(path.name + ".zip")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(path, path.name)
    else:
        return path
    path.unlink()
    return target


@pytest.mark.parametrize("kind", ["plain", "gz", "zip"])
@pytest.mark.parametrize("name, ratings_format, unrated_marker", [
    ("animelist.csv", "animelist2020", 0),
    ("rating_complete.csv", "rating_complete2020", None),
])
def test_reads_2020_ratings_formats(tmp_path, config, kind, name, ratings_format, unrated_marker):
    shutil.copy(FIXTURES / name, tmp_path / name)
    path = compress(tmp_path / name, kind)
    expected = pd.read_csv(FIXTURES / name)

    ratings = read_ratings(path, ratings_format, config)

    assert len(ratings.rating) == len(expected) == 499
    assert ratings.user_id.dtype == np.int32 and ratings.anime_id.dtype == np.int32 and ratings.rating.dtype == np.int8
    np.testing.assert_array_equal(ratings.user_id, expected["user_id"])
    np.testing.assert_array_equal(ratings.anime_id, expected["anime_id"])
    np.testing.assert_array_equal(ratings.rating, expected["rating"])
    if unrated_marker is not None:
        assert (ratings.rating == 0).sum() == (expected["rating"] == unrated_marker).sum() > 0
    assert ratings.skipped == {}


def test_reads_2016_ratings_and_maps_minus_one_to_not_rated(config):
    ratings = read_ratings(SAMPLE / "rating.csv.gz", "rating2016", config)
    assert len(ratings.rating) == 520_609
    assert (ratings.rating == 0).sum() == 100_666  # the sample's watched-but-unrated (-1) rows
    assert ratings.rating.min() == 0 and ratings.rating.max() == 10
    assert len(np.unique(ratings.user_id)) == 5_000


def test_anime_table_from_the_real_2020_files():
    anime = read_anime_table(SAMPLE / "anime.csv.zip", SAMPLE / "anime_with_synopsis.csv.zip")
    assert len(anime) == 17_562
    bebop = anime.set_index("anime_id").loc[1]
    assert bebop["name"] == "Cowboy Bebop" and bebop["type"] == "TV" and bebop["episodes"] == 26
    assert list(bebop["genres"]) == ["Action", "Adventure", "Comedy", "Drama", "Sci-Fi", "Space"]
    assert bebop["year"] == 1998 and bebop["premiered"] == "Spring 1998" and bebop["score"] == pytest.approx(8.78)
    assert bebop["synopsis"].startswith("In the year 2071")
    # "Unknown" English names fall back to the original name; "Unknown" never shows up as a value
    assert (anime["english_name"] != "Unknown").all() and anime["english_name"].notna().all()
    assert anime["name"].ne("Unknown").all()


@pytest.mark.parametrize("genre_column", ["Genders", "Genres"])
def test_both_genre_spellings(tmp_path, genre_column):
    path = write_anime_2020(tmp_path, genre_column=genre_column)
    anime = read_anime_table(path, None).set_index("anime_id")
    assert list(anime.loc[2, "genres"]) == ["Action", "Comedy"]
    assert list(anime.loc[3, "genres"]) == ["Romance"]
    assert anime.loc[3, "english_name"] == "Anime 3"  # English name "Unknown" -> Name
    assert anime.loc[5, "year"] == 2005


def test_anime_table_from_the_2016_format():
    anime = read_anime_table(FIXTURES / "anime2016.csv.gz", None).set_index("anime_id")
    assert len(anime) == 12_294
    assert anime.loc[5114, "name"] == "Fullmetal Alchemist: Brotherhood"
    assert "Action" in list(anime.loc[5114, "genres"]) and anime.loc[5114, "type"] == "TV"


def test_ingest_the_embedded_sample_by_default(tmp_path, config):
    raw = ingest(config, destination=tmp_path / "raw")
    names = sorted(p.name for p in raw.iterdir())
    assert names == ["anime.csv.zip", "anime_with_synopsis.csv.zip", "rating.csv.gz", "source.json"]
    assert describe_raw_folder(raw)["ratings_format"] == "rating2016"


def test_ingest_a_local_folder_prefers_animelist(tmp_path, config):
    source = tmp_path / "kaggle"
    write_anime_2020(source)
    shutil.copy(FIXTURES / "animelist.csv", source / "animelist.csv")
    shutil.copy(FIXTURES / "rating_complete.csv", source / "rating_complete.csv")
    raw = ingest(config, raw_dir=source, destination=tmp_path / "raw")
    assert describe_raw_folder(raw)["ratings_format"] == "animelist2020"


@pytest.mark.parametrize("present, message", [
    ([], "no anime.csv"),
    (["anime"], "no ratings file"),
])
def test_ingest_names_what_is_missing(tmp_path, config, present, message):
    source = tmp_path / "kaggle"
    source.mkdir()
    if "anime" in present:
        write_anime_2020(source)
    with pytest.raises(UserError, match=message):
        ingest(config, raw_dir=source, destination=tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_ingest_rejects_a_folder_that_does_not_exist(tmp_path, config):
    with pytest.raises(UserError, match="does not exist"):
        ingest(config, raw_dir=tmp_path / "nope", destination=tmp_path / "raw")


def test_missing_ratings_column_is_named(tmp_path, config):
    path = write_ratings(tmp_path, [(1, 2, 3)], header="user_id,anime_id,score")
    with pytest.raises(UserError, match="lacks column.*rating"):
        read_ratings(path, "rating2016", config)


def test_malformed_rows_are_skipped_and_counted(tmp_path, config):
    good = [(u, a, 7) for u in range(20) for a in range(1, 11)]
    path = write_ratings(tmp_path, [*good, ("x", 1, 5), (1, 2), (3, 4, 11), (5, 6, 7, 8)])
    config["data"]["max_malformed_share"] = 0.05
    ratings = read_ratings(path, "rating2016", config)
    assert len(ratings.rating) == 200
    assert ratings.rows_skipped == 4
    assert ratings.skipped == {"rows with the wrong number of fields": 2, "rows with a non-integer value": 1,
                               "rows with an id or rating out of range": 1}


def test_too_many_malformed_rows_stop_the_run(tmp_path, config):
    path = write_ratings(tmp_path, [(1, 1, 7), ("bad", "row", "x"), (2, 2, 99)])
    with pytest.raises(UserError, match=r"2 of 3 rows .* malformed.*max_malformed_share"):
        read_ratings(path, "rating2016", config)
