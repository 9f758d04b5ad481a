"""Title search's index on its own (src/engine/title_index.py): known answers on tiny hand-made title lists, then
what fans type, on the real catalogue of the embedded sample (17,562 anime, read once for the module)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from src.data.metadata import read_metadata
from src.engine.catalogue import clean_text
from src.engine.title_index import (
    ABBREVIATION,
    ALL_WORDS,
    EXACT,
    FUZZY,
    PREFIX,
    SUBSTRING,
    TitleIndex,
    normalise_title,
    search_key,
    title_acronyms,
)
from tests.conftest import SAMPLE

TITLES = [["Naruto", "ナルト"], ["Naruto: Shippuuden", "Naruto Shippuden"], ["Boruto: Naruto Next Generations"],
          ["Cowboy Bebop"], ["Bebop & Rocksteady"], ["Monster"]]
MEMBERS = np.array([500, 400, 100, 300, 5, 200])


def test_normalise_title_folds_case_and_leaves_no_tab_or_newline():
    assert normalise_title("  Steins;Gate\t0\n ") == "steins;gate 0"


@pytest.mark.parametrize("title, key", [
    ("Steins;Gate", "steins gate"), ("Re:ZERO -Starting Life-", "re zero starting life"),
    ("One-Punch Man", "one punch man"), ("JoJo's Bizarre Adventure", "jojos bizarre adventure"),
    ("Pokémon", "pokemon"), ("Ｆｕｌｌ　Ｗｉｄｔｈ", "full width"), ("Hunter × Hunter", "hunter x hunter"),
    ("Kimi no Na wa.", "kimi no na wa"), ("鬼滅の刃", "鬼滅の刃"), ("ガンダム・ビルド", "ガンダム ビルド"), ("!!", ""),
])
def test_search_key_ignores_case_punctuation_spacing_and_accents(title: str, key: str):
    assert search_key(title) == key


@pytest.mark.parametrize("title, expected", [
    ("Attack on Titan", {"aot"}), ("One-Punch Man", {"opm"}), ("Hunter x Hunter", {"hxh"}),
    ("Hunter × Hunter (2011)", {"hxh"}), ("Dragon Ball Z", {"dbz"}), ("Mob Psycho 100", {"mp100"}),
    ("Bebop & Rocksteady", {"b&r"}), ("Jujutsu Kaisen (TV)", {"jkt", "jjk", "jjkt"}),
    ("Boku no Hero Academia", {"bnha", "bknha"}), ("Sword Art Online: Alicization", {"saoa", "sao"}),
])
def test_acronyms_are_initials_with_connectors_numbers_heads_and_the_first_two_syllables(title, expected):
    assert expected <= title_acronyms(title)


def test_acronyms_split_compound_words_and_skip_single_words_and_non_latin_titles():
    compounds = {"fullmetal": ("full", "metal")}
    assert {"fmab", "fma"} <= title_acronyms("Fullmetal Alchemist: Brotherhood", compounds)
    assert "fma" not in title_acronyms("Fullmetal Alchemist")  # no compound known: "fa"
    assert title_acronyms("Naruto") == set() and title_acronyms("進撃の巨人 ファイナル") == set()


def test_exact_then_prefix_then_substring_each_by_popularity():
    index = TitleIndex(TITLES, MEMBERS)
    assert index.search("naruto", 10) == [(0, EXACT), (1, PREFIX), (2, SUBSTRING)]
    assert index.search("bebop", 10) == [(4, PREFIX), (3, SUBSTRING)]
    assert index.search("naruto", 2) == [(0, EXACT), (1, PREFIX)]
    assert index.search("ナルト", 10) == [(0, EXACT)]
    assert index.search("onster", 10) == [(5, SUBSTRING)]  # inside a word (and close to it: still "contains")


def test_punctuation_and_spaces_do_not_matter():
    index = TitleIndex([["Steins;Gate"], ["Re:Zero kara Hajimeru Isekai Seikatsu"], ["Gate"]], np.array([3, 2, 1]))
    assert index.search("steins gate", 5) == [(0, EXACT)]
    assert index.search("steinsgate", 5) == [(0, EXACT)]
    assert index.search("re zero", 5) == [(1, PREFIX)]
    assert index.search("rezero", 5) == [(1, PREFIX)]
    assert index.search(normalise_title("Re:ZERO"), 5) == [(1, PREFIX)]


def test_words_in_any_order_and_partial_words():
    index = TitleIndex(TITLES, MEMBERS)
    assert index.search("bebop cowboy", 5) == [(3, ALL_WORDS)]
    assert index.search("cow beb", 5) == [(3, ALL_WORDS)]
    assert index.search("cowboy beb", 5) == [(3, PREFIX)]  # as typed, the start of the title
    assert index.search("shipp naru", 5) == [(1, ALL_WORDS)]


def test_typos_are_forgiven_only_when_no_word_matches_as_typed():
    index = TitleIndex([["Naruto"], ["Naruko"], ["Cowboy Bebop"]], np.array([3, 2, 1]))
    assert index.search("naruot", 5) == [(0, FUZZY), (1, FUZZY)]  # both one letter off
    assert index.search("cowboy bebob", 5) == [(2, FUZZY)]
    assert index.search("naruto", 5) == [(0, EXACT)]  # an exact title beats a close one, which is left out
    assert index.search("nar", 5) == [(0, PREFIX), (1, PREFIX)]
    assert index.search("narx", 5) == [] and index.search("cowgirl bebop", 5) == []  # too far


def test_closer_and_whole_titles_first_among_word_and_typo_matches():
    fullmetal = TitleIndex([["Fullmetal Alchemist: Brotherhood"], ["Fullmetal Alchemist"]], np.array([2000, 1000]))
    assert fullmetal.search("alchemist fullmetal", 5) == [(1, ALL_WORDS), (0, ALL_WORDS)]
    clannad = TitleIndex([["Land"], ["Clannad: After Story"], ["Clannad"]], np.array([1000, 500, 100]), ["TV"] * 3)
    assert clannad.search("clanad", 5) == [(2, FUZZY), (1, FUZZY), (0, FUZZY)]  # 92 whole, 92 in part, then 80


def test_a_typo_in_several_words_sums_each_words_best_ratio():
    # "atack" is 91 from "attack"; "titn" 89 from "titan" and 80 from "titans"; "attack" is 71 from "attackmania"
    titles = [["Attack on Titans"], ["Attack Titan Titans"], ["Attack Titan"], ["Titan"], ["Attack"],
              ["Attackmania Titan"]]
    index = TitleIndex(titles, np.array([1000, 10, 1, 5000, 3000, 2]))
    # 100 - 91 + 100 - 89 whole, the same in more words (its "titan" counts, not its "titans"), then 100 - 91 + 100 - 80
    assert index.search("atack titn", 10) == [(2, FUZZY), (1, FUZZY), (0, FUZZY)]
    # a word there as typed falls short of nothing, even at the start of a word too long to be close ("attackmania")
    assert index.search("attack titn", 10) == [(5, FUZZY), (2, FUZZY), (1, FUZZY), (0, FUZZY)]
    assert index.search("attack on titn", 10) == [(0, FUZZY)]  # a short word only as typed


def test_an_acronym_shares_the_prefix_tier_so_popularity_decides():
    index = TitleIndex([["AOTU Shijie"], ["Shingeki no Kyojin", "Attack on Titan"]], np.array([582, 2_531_397]),
                       ["ONA", "TV"])
    assert index.search("aot", 5) == [(1, ABBREVIATION), (0, PREFIX)]
    assert index.search("snk", 5) == [(1, ABBREVIATION)]
    assert index.search("f.m.a.", 5) == []


def test_main_series_first_then_members_then_index():
    titles = [["Jujutsu Kaisen"], ["Jujutsu Kaisen (TV)"], ["Jujutsu Kaisen: Music"], ["Jujutsu Kaisen Movie"],
              ["Jujutsu Kaisen Recap"]]
    index = TitleIndex(titles, np.array([14_024, 707_976, 900_000, 50_000, 50_000]),
                       ["ONA", "TV", "Music", "Movie", None])
    assert index.search("jujutsu kaisen", 10) == [(1, EXACT), (0, EXACT), (3, PREFIX), (4, PREFIX), (2, PREFIX)]
    assert index.search("jujutsu kaisen", 10) == index.search("jujutsu kaisen", 10)  # deterministic
    untyped = TitleIndex(titles, np.array([5, 5, 5, 5, 5]))
    assert [j for j, _ in untyped.search("jujutsu", 10)] == [0, 1, 2, 3, 4]


def test_allowed_hides_anime_and_counts_agree_with_searches():
    index = TitleIndex(TITLES, MEMBERS)
    allowed = np.array([False, True, True, True, True, True])
    assert index.search("naruto", 10, allowed) == [(1, PREFIX), (2, SUBSTRING)]
    assert index.count("naruto", allowed) == 2 and index.count("naruto") == 3
    for text in ["naruto", "bebop", "o", "t", "monster", "ナルト", "shippu", "zzz", "naruto: s", "", "naruot", "bb"]:
        for mask in (None, allowed):
            found = index.search(text, index.count(text, mask), mask)
            assert len(found) == len({j for j, _ in found}) == index.count(text, mask), text
            assert found[:2] == index.search(text, 2, mask)
            assert mask is None or all(mask[j] for j, _ in found)


def test_no_match_and_empty_queries_find_nothing():
    index = TitleIndex(TITLES, MEMBERS)
    for text in ["zzzzqqq", "", "  ", "!!!", "x" * 100, "naruto" * 20]:
        assert index.search(text, 10) == [] and index.count(text) == 0, text
    assert index.search("naruto", 0) == []
    assert TitleIndex([], np.zeros(0)).search("naruto", 5) == []


def test_literal_matches_found_from_pairs_and_single_characters():
    index = TitleIndex(TITLES, MEMBERS)
    assert index.search("y b", 5) == [(3, SUBSTRING)]  # the only place spans two words
    assert index.search("to ne", 5) == [(2, SUBSTRING)]
    assert index.search("eb", 5) == [(3, SUBSTRING), (4, SUBSTRING)]  # a key of two characters: one pair
    assert index.search("be", 5) == [(4, PREFIX), (3, SUBSTRING)]
    assert index.search("ob", 5) == [] and index.search("pr", 5) == []  # both characters there, never side by side
    assert index.search("k", 5) == [(4, SUBSTRING)] and index.search("m", 5) == [(5, PREFIX)]  # every pair "m" starts
    assert index.search("ナ", 5) == [(0, PREFIX)] and index.search("ル", 5) == [(0, SUBSTRING)]
    assert index.search("r", 10) == [(4, SUBSTRING), (0, SUBSTRING), (1, SUBSTRING), (5, SUBSTRING), (2, SUBSTRING)]
    assert index.search("ster", 5) == [(5, SUBSTRING)] and index.search("monster", 5) == [(5, EXACT)]  # the last key
    assert index.search("cowboy bebop " * 3, 5) == [(3, ALL_WORDS)]  # longer than any title: found by its words only


# ---------------------------------------------------------------------- the real catalogue
@pytest.fixture(scope="module")
def catalogue() -> tuple[TitleIndex, pd.DataFrame]:
    """The index over every title of the embedded sample's 17,562 anime, as the catalogue builds it."""
    table = read_metadata(SAMPLE / "anime.csv.zip", SAMPLE / "anime_with_synopsis.csv.zip").table
    titles = [[text for text in map(clean_text, [name, english, japanese, *list(synonyms)]) if text]
              for name, english, japanese, synonyms
              in zip(table["name"], table["english_name"], table["japanese_name"], table["synonyms"], strict=True)]
    types = [clean_text(value) for value in table["type"]]
    return TitleIndex(titles, table["members"].to_numpy(np.int64), types), table


def first_ids(catalogue: tuple[TitleIndex, pd.DataFrame], query: str, limit: int = 1,
              allowed: np.ndarray | None = None) -> list[int]:
    index, table = catalogue
    return [int(table["anime_id"].iloc[j]) for j, _ in index.search(normalise_title(query), limit, allowed)]


@pytest.mark.parametrize("query, expected", [
    ("steins gate", 9253), ("steinsgate", 9253), ("re zero", 31240), ("rezero", 31240),
    ("fullmetal alchemist brotherhood", 5114), ("fullmetal brotherhood", 5114), ("brotherhood fullmetal", 5114),
    ("jujutsu kaisen", 40748), ("shingeki", 16498), ("attack on titan", 16498), ("one piece", 21),
    ("death note", 1535), ("demon slayer", 38000), ("your name", 32281), ("konosuba", 30831), ("toradora", 4224),
    ("haikyu", 20583), ("mob psycho", 32182), ("code geass", 1575), ("bebop", 1), ("naruto", 20),
    # abbreviations derived from the titles
    ("fma", 5114), ("aot", 16498), ("jjk", 40748), ("hxh", 11061), ("opm", 30276), ("mha", 31964), ("sao", 11757),
    ("dbz", 813), ("snk", 16498), ("bnha", 31964), ("kny", 38000),
    # typos
    ("naruot", 20), ("evangelon", 30), ("cowboy bebob", 1), ("one peice", 21), ("shingeky no kyojin", 16498),
    ("fullmetal alchemist brotherhod", 5114),
])
def test_what_fans_type_finds_the_show_they_mean(catalogue, query: str, expected: int):
    assert first_ids(catalogue, query) == [expected]


def test_plain_titles_keep_exact_then_prefix(catalogue):
    assert first_ids(catalogue, "naruto", 2) == [20, 1735]  # Naruto, then Naruto: Shippuuden
    assert first_ids(catalogue, "jujutsu kaisen", 2) == [40748, 38777]  # the TV series, then the 2018 ONA
    assert first_ids(catalogue, "hunter x hunter", 2) == [11061, 136]
    index, _ = catalogue
    assert index.search("naruto", 1)[0][1] == EXACT and index.search("aot", 1)[0][1] == ABBREVIATION
    assert index.search("naruot", 1)[0][1] == FUZZY


def test_allowed_excludes_anime_on_the_real_catalogue(catalogue):
    index, table = catalogue
    allowed = (table["anime_id"] != 20).to_numpy()
    assert first_ids(catalogue, "naruto", 1, allowed) == [1735]
    assert 20 not in first_ids(catalogue, "naruot", 100, allowed)
    assert index.count("naruto", allowed) == index.count("naruto") - 1
    assert index.search("naruto", 10, np.zeros(len(table), dtype=bool)) == []


@pytest.mark.parametrize("query", ["a", "na", "o", "the", "naruto", "aot", "fullmetal brotherhood", "naruot",
                                   "cowboy bebob", "鬼滅の刃", "zzzzqqq"])
def test_count_is_what_search_returns_in_all(catalogue, query: str):
    index, _ = catalogue
    total = index.count(query)
    everything = index.search(query, total + 10)
    assert len(everything) == len({j for j, _ in everything}) == total
    assert index.search(query, 10) == everything[:10]


def test_queries_matching_nothing_find_nothing(catalogue):
    index, _ = catalogue
    nonsense = ["zzzzqqq", "qwertyuiopasdfghjklzxcvbnm" * 3 + "qwertyuiopasdfghjklzxc",
                "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore"]
    for query in nonsense:
        assert index.search(query, 10) == [] and index.count(query) == 0, query
