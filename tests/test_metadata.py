"""The metadata table: the 2023 and 2020 formats on real files, the repairs of the 2020 scrape, and ingestion of a
raw folder whose metadata is the 2023 file."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from src.data.ingestion import describe_raw_folder, ingest
from src.data.metadata import (
    METADATA_COLUMNS,
    TRUNCATION_MARK,
    is_truncated,
    read_metadata,
    repair_synopses,
    space_english_names,
)
from src.data.processing import process, read_anime_table
from tests.conftest import FIXTURES, SAMPLE
from tests.raw_data import write_anime_2020, write_ratings
from tests.test_data_loading import compress

HEAD_2023 = FIXTURES / "anime-dataset-2023_head.csv"


@pytest.fixture(scope="module")
def anime_2020():
    """The embedded sample's real 2020 files, read and repaired (a few seconds: once for the module)."""
    return read_metadata(SAMPLE / "anime.csv.zip", SAMPLE / "anime_with_synopsis.csv.zip")


@pytest.fixture(scope="module")
def anime_2023():
    return read_metadata(HEAD_2023)


# ------------------------------------------------------------------------------------------- 2023 format
def test_the_2023_excerpt_reads_with_images_synonyms_and_studios(anime_2023):
    table = anime_2023.table
    assert anime_2023.source_format == "2023"
    assert list(table.columns) == METADATA_COLUMNS
    assert len(table) == 400 and table["anime_id"].is_unique
    bebop = table.set_index("anime_id").loc[1]
    assert bebop["name"] == bebop["english_name"] == "Cowboy Bebop"
    assert bebop["image_url"] == "https://cdn.myanimelist.net/images/anime/4/19644.jpg"
    assert bebop["japanese_name"] == "カウボーイビバップ" and list(bebop["synonyms"]) == ["カウボーイビバップ"]
    assert list(bebop["studios"]) == ["Sunrise"] and bebop["source"] == "Original"
    assert list(bebop["genres"]) == ["Action", "Award Winning", "Sci-Fi"]  # 2023 genre names kept as they are
    assert bebop["age_rating"] == "R - 17+ (violence & profanity)"
    assert bebop["type"] == "TV" and bebop["episodes"] == 26 and bebop["score"] == pytest.approx(8.75)
    assert bebop["premiered"] == "Spring 1998" and bebop["year"] == 1998 and bebop["members"] == 1_771_505
    assert bebop["synopsis"].startswith("Crime is timeless. By the year 2071")
    # every anime has its image; several studios are a list
    assert table["image_url"].str.startswith("https://cdn.myanimelist.net/images/anime/").all()
    evangelion = table.set_index("anime_id").loc[30]
    assert list(evangelion["studios"]) == ["Gainax", "Tatsunoko Production"]


def test_2023_missing_values_are_none_not_unknown(anime_2023):
    table = anime_2023.table.set_index("anime_id")
    one_piece = table.loc[21]
    assert pd.isna(one_piece["episodes"])  # "UNKNOWN": still airing
    # A native title that only repeats the name in capitals is no synonym
    assert one_piece["japanese_name"] == "ONE PIECE" and list(one_piece["synonyms"]) == []
    assert table.loc[15, "english_name"] == "Eyeshield 21"  # English name "UNKNOWN" -> the name
    for column in ("name", "english_name", "type", "premiered", "synopsis", "japanese_name", "source", "age_rating"):
        assert not table[column].isin(["UNKNOWN", "Unknown"]).any(), column
    assert not table["studios"].map(lambda studios: "UNKNOWN" in studios).any()
    assert anime_2023.repairs == {"synopses_repaired": 0, "synopses_marked_truncated": 0,
                                  "english_names_spaced": 0, "synopsis_placeholders_dropped": 0}


def test_the_old_entry_point_returns_the_same_table():
    assert read_anime_table(HEAD_2023, None).equals(read_metadata(HEAD_2023).table)


# ---------------------------------------------------------------------------------- 2020 files, repaired
def test_2020_files_read_with_their_repairs_counted(anime_2020):
    table = anime_2020.table
    assert anime_2020.source_format == "2020" and list(table.columns) == METADATA_COLUMNS
    assert len(table) == 17_562
    # 5,266 synopses start with a lower-case letter and 11 with a full stop: every one repaired or marked
    assert anime_2020.repairs == {"synopses_repaired": 4_433, "synopses_marked_truncated": 844,
                                  "english_names_spaced": 1_592, "synopsis_placeholders_dropped": 745}
    synopses = table["synopsis"].dropna()
    assert not synopses.map(is_truncated).any()
    assert synopses.str.startswith(TRUNCATION_MARK).sum() == 844
    assert not synopses.str.startswith("No synopsis").any()
    by_id = table.set_index("anime_id")
    assert list(by_id.loc[38000, "studios"]) == ["ufotable"] and by_id.loc[38000, "source"] == "Manga"
    assert by_id.loc[1, "japanese_name"] == "カウボーイビバップ" and by_id.loc[1, "image_url"] is None
    assert list(by_id.loc[1, "synonyms"]) == []  # the 2020 files have no other names


@pytest.mark.parametrize("anime_id, start", [
    (5, "Another day, another bounty"),  # "other day": "An" was cut
    (20, "Moments prior to Naruto"),
    (164, "When an Emishi village"),
    (48, "A young wavemaster"),  # two words: "A y" was cut
    (339, "Lain Iwakura, an awkward"),  # the name recurs in the synopsis
    (74, "Mikan Sakura"),
    (1, "In the year 2071"),  # never cut: "I" is not among the stripped characters
])
def test_cut_synopses_are_restored_from_the_corpus(anime_2020, anime_id, start):
    assert anime_2020.table.set_index("anime_id").loc[anime_id, "synopsis"].startswith(start)


def test_an_ambiguous_cut_synopsis_is_marked(anime_2020):
    by_id = anime_2020.table.set_index("anime_id")
    # "ll Shuichi ever dreamed": "All" and "Will" both start many sentences: left cut, and said so
    assert by_id.loc[243, "synopsis"].startswith("…ll Shuichi ever dreamed")
    # ". Money is holding": "Mr."? "Dr."? nothing to match
    assert by_id.loc[902, "synopsis"].startswith("…. Money is holding")


def test_english_names_get_their_space_back_except_real_titles(anime_2020):
    english = anime_2020.table.set_index("anime_id")["english_name"]
    assert english[5114] == "Fullmetal Alchemist: Brotherhood"
    assert english[2163] == "AIKa R-16: Virgin Mission"
    assert english[11703] == "Code:Breaker"
    assert english[31240] == "Re:ZERO -Starting Life in Another World-"
    assert english[36511] == "Tokyo Ghoul:re"
    assert english.ne("Unknown").all() and english.notna().all()


def test_space_english_names_decides_by_the_romaji_name():
    names, changed = space_english_names(
        ["Fullmetal Alchemist:Brotherhood", "Code:Breaker", "Re:ZERO -Starting Life-", "00:08", "Plain", None,
         "Ghost in the Shell:Stand Alone Complex:Tachikomatic Days"],
        ["Fullmetal Alchemist: Brotherhood", "Code:Breaker", "Re:Zero kara Hajimeru", "00:08", "Plain", "X",
         "Koukaku Kidoutai: Stand Alone Complex - Tachikoma na Hibi"])
    assert names == ["Fullmetal Alchemist: Brotherhood", "Code:Breaker", "Re:ZERO -Starting Life-", "00:08", "Plain",
                     None, "Ghost in the Shell: Stand Alone Complex: Tachikomatic Days"]
    assert changed == 2


def test_repair_synopses_restores_the_unambiguous_and_marks_the_rest():
    corpus = ["After the war the city was rebuilt.", "After the storm came the calm.", "After the rain, a rainbow.",
              "Will the heroes win? All the heroes fight.", "All the villains flee. Will the villains return?"]
    texts, counts = repair_synopses([*corpus, "fter the war, peace.", "ll the heroes gather.", "xqzt happens.", None])
    assert texts[5] == "After the war, peace."  # "A" was cut; only "After" ends with "fter"
    assert texts[6] == "…ll the heroes gather."  # "All the" and "Will the" start sentences equally often
    assert texts[7] == "…xqzt happens."  # no word ends with "xqzt"
    assert texts[8] is None and texts[:5] == corpus
    assert counts == {"synopses_repaired": 1, "synopses_marked_truncated": 2}


# ------------------------------------------------------------------------------------ ingestion, processing
@pytest.mark.parametrize("kind", ["plain", "gz", "zip"])
def test_a_raw_folder_with_the_2023_metadata(tmp_path, config, kind):
    source = tmp_path / "kaggle"
    source.mkdir()
    shutil.copy(HEAD_2023, source / "anime-dataset-2023.csv")
    metadata = compress(source / "anime-dataset-2023.csv", kind)
    write_ratings(source, [(1, 1, 8)])
    found = describe_raw_folder(source)
    assert found["anime"] == metadata and found["synopsis"] is None and found["ratings_format"] == "rating2016"
    raw = ingest(config, raw_dir=source, destination=tmp_path / "raw")
    assert sorted(p.name for p in raw.iterdir()) == sorted([metadata.name, "rating.csv", "source.json"])
    assert read_metadata(describe_raw_folder(raw)["anime"]).table.equals(read_metadata(HEAD_2023).table)


def test_the_2023_file_is_preferred_over_anime_csv(tmp_path, config):
    source = tmp_path / "kaggle"
    write_anime_2020(source)
    shutil.copy(SAMPLE / "anime_with_synopsis.csv.zip", source)
    shutil.copy(HEAD_2023, source / "anime-dataset-2023.csv")
    write_ratings(source, [(1, 1, 8)])
    found = describe_raw_folder(source)
    assert found["anime"].name == "anime-dataset-2023.csv" and found["synopsis"] is None
    (source / "anime-dataset-2023.csv").unlink()
    found = describe_raw_folder(source)  # without it, anime.csv and its synopses as before
    assert found["anime"].name == "anime.csv" and found["synopsis"].name == "anime_with_synopsis.csv.zip"


def test_processing_the_2023_metadata_reports_its_repairs(tmp_path, config):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(HEAD_2023, raw / "anime-dataset-2023.csv")
    rows = [(user, anime_id, 1 + (user + anime_id) % 10) for user in range(1, 6) for anime_id in (1, 5, 6, 7, 8, 15)]
    write_ratings(raw, rows)
    summary = process(config, raw_dir=raw, destination=tmp_path / "processed", min_user_ratings=1)
    assert summary["metadata_repairs"] == {"synopses_repaired": 0, "synopses_marked_truncated": 0,
                                           "english_names_spaced": 0, "synopsis_placeholders_dropped": 0}
    saved = json.loads((tmp_path / "processed" / "summary.json").read_text())
    assert saved["metadata_repairs"] == summary["metadata_repairs"]
    anime = pd.read_parquet(tmp_path / "processed" / "anime.parquet")
    assert set(METADATA_COLUMNS) <= set(anime.columns)
    assert anime.set_index("anime_id").loc[1, "image_url"].startswith("https://cdn.myanimelist.net/")
    assert isinstance(anime["studios"].iloc[0], np.ndarray | list)


# ------------------------------------------------------------------------------------------- not yet aired
def test_titles_that_had_not_aired_in_the_2020_files_are_marked(anime_2020):
    table = anime_2020.table.set_index("anime_id")
    # "Aired: Unknown" (Chainsaw Man, Orient, Jigokuraku), a year only in 2021 and no score (Yuukaku-hen), a start
    # after the scrape (Megaton-kyuu Musashi, "Jul, 2021 to ?"); aired ones, recent or old, are not marked
    assert table.loc[[44511, 45560, 46569, 47778, 33737], "unaired"].all()
    assert not table.loc[[1, 38000, 40748, 5114], "unaired"].any()
    assert table["unaired"].sum() == 512  # of 17,562: the 309 "Unknown" and 203 starting too late or vaguely


def test_not_yet_aired_follows_the_2023_status_and_the_2016_file_has_no_such_titles(tmp_path, anime_2023):
    assert not anime_2023.table["unaired"].any()  # the excerpt's first 400 anime all aired
    lines = HEAD_2023.read_text(encoding="utf-8").splitlines()
    header, first = lines[0], pd.read_csv(HEAD_2023, nrows=1)
    first.loc[0, "Status"] = "Not yet aired"
    (tmp_path / "anime-dataset-2023.csv").write_text(header + "\n" + first.to_csv(index=False, header=False),
                                                     encoding="utf-8")
    assert read_metadata(tmp_path / "anime-dataset-2023.csv").table["unaired"].tolist() == [True]
    assert not read_metadata(FIXTURES / "anime2016.csv.gz").table["unaired"].any()
