"""Franchises over the real catalogue (the embedded 2020 metadata, 17,562 anime): real title pairs that must share a
franchise and look-alike pairs that must not, recap and music-video detection, release order and the first entry a
newcomer is offered; then known-answer tests on small hand-made tables."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from config import paths_config
from src.data.metadata import read_metadata
from src.engine.franchises import (
    UNKNOWN_START,
    Franchises,
    build_franchises,
    entry_order,
    franchise_ids,
    is_unrecommendable,
    japanese_key,
    start_dates,
    title_key,
)

SAMPLE = paths_config.SAMPLE_DATA_DIR

# (anime_id, name, anime_id, name): one franchise. Decided on titles, studios, Japanese names and synopses alone
# (no content features), the strictest setting.
SAME_FRANCHISE = [
    (16498, "Shingeki no Kyojin", 25777, "Shingeki no Kyojin Season 2"),
    (16498, "Shingeki no Kyojin", 38524, "Shingeki no Kyojin Season 3 Part 2"),
    (16498, "Shingeki no Kyojin", 40028, "Shingeki no Kyojin: The Final Season"),  # MAPPA, not Wit Studio
    (16498, "Shingeki no Kyojin", 18397, "Shingeki no Kyojin OVA"),
    (16498, "Shingeki no Kyojin", 23775, "Shingeki no Kyojin Movie 1: Guren no Yumiya"),
    (16498, "Shingeki no Kyojin", 31374, "Shingeki! Kyojin Chuugakkou"),  # English "Attack on Titan: Junior High"
    (36028, "Golden Kamuy", 37989, "Golden Kamuy 2nd Season"),
    (38671, "Enen no Shouboutai", 40956, "Enen no Shouboutai: Ni no Shou"),
    (20, "Naruto", 1735, "Naruto: Shippuuden"),
    (20, "Naruto", 34566, "Boruto: Naruto Next Generations"),
    (1575, "Code Geass: Hangyaku no Lelouch", 2904, "Code Geass: Hangyaku no Lelouch R2"),
    (1575, "Code Geass: Hangyaku no Lelouch", 8888, "Code Geass: Boukoku no Akito 1 - Yokuryuu wa Maiorita"),
    (14719, "JoJo no Kimyou na Bouken (TV)", 37991, "JoJo no Kimyou na Bouken Part 5: Ougon no Kaze"),
    (666, "JoJo no Kimyou na Bouken", 14719, "JoJo no Kimyou na Bouken (TV)"),
    (356, "Fate/stay night", 10087, "Fate/Zero"),
    (10087, "Fate/Zero", 38084, "Fate/Grand Order: Zettai Majuu Sensen Babylonia"),
    (38000, "Kimetsu no Yaiba", 47398, "Kimetsu Gakuen: Valentine-hen"),  # its synopsis names Kimetsu no Yaiba
    (136, "Hunter x Hunter", 11061, "Hunter x Hunter (2011)"),
    (11757, "Sword Art Online", 36475, "Sword Art Online Alternative: Gun Gale Online"),  # other studio
    (2167, "Clannad", 4181, "Clannad: After Story"),
    (5081, "Bakemonogatari", 11597, "Nisemonogatari"),
    (5081, "Bakemonogatari", 31181, "Owarimonogatari"),
    (5081, "Bakemonogatari", 17074, "Monogatari Series: Second Season"),
    (9253, "Steins;Gate", 30484, "Steins;Gate 0"),
    (20583, "Haikyuu!!", 38883, "Haikyuu!!: To the Top"),
    (627, "Major S1", 36565, "Major 2nd (TV)"),
    (918, "Gintama", 28977, "Gintama°"),  # Bandai Namco Pictures, not Sunrise: the Japanese names agree
    (21, "One Piece", 459, "One Piece Movie 1"),
    (4224, "Toradora!", 23701, "Toradora! Recap"),
    (144, "Kanon", 1530, "Kanon (2006)"),  # a remake by another studio
]

# Look-alike names, different franchises.
DIFFERENT_FRANCHISES = [
    (918, "Gintama", 16918, "Gin no Saji"),
    (32281, "Kimi no Na wa.", 36098, "Kimi no Suizou wo Tabetai"),
    (32281, "Kimi no Na wa.", 5643, "Kimi no Na wo Yobeba"),
    (21, "One Piece", 30276, "One Punch Man"),
    (101, "Air", 857, "Air Gear"),
    (101, "Air", 230, "Air Master"),
    (857, "Air Gear", 230, "Air Master"),  # both Toei
    (16498, "Shingeki no Kyojin", 21843, "Shingeki no Bahamut: Genesis"),
    (16498, "Shingeki no Kyojin", 5834, "Kyojin no Hoshi"),
    (38000, "Kimetsu no Yaiba", 36028, "Golden Kamuy"),
    (1, "Cowboy Bebop", 1575, "Code Geass: Hangyaku no Lelouch"),  # both Sunrise
    (9041, "IS: Infinite Stratos", 1084, "I''s"),
    (10958, "High Score", 21877, "High Score Girl"),
    (11757, "Sword Art Online", 27783, "Sword Gai The Animation"),
    (20, "Naruto", 838, "Narutaru: Mukuro Naru Hoshi Tama Taru Ko"),
    (20583, "Haikyuu!!", 3335, "Haikara-san ga Tooru"),
    (22319, "Tokyo Ghoul", 42249, "Tokyo Revengers"),
    (36028, "Golden Kamuy", 17895, "Golden Time"),
    (9756, "Mahou Shoujo Madoka★Magica", 76, "Mahou Shoujo Lyrical Nanoha"),
    (80, "Mobile Suit Gundam", 1288, "Kidou Keisatsu Patlabor"),
    (8769, "Ore no Imouto ga Konnani Kawaii Wake ga Nai", 28297, "Ore Monogatari!!"),
    (5081, "Bakemonogatari", 28297, "Ore Monogatari!!"),
    (17074, "Monogatari Series: Second Season", 36578, "Monogatari no Aru Satou"),
    (23755, "Nanatsu no Taizai", 33834, "Sin: Nanatsu no Taizai"),
    (31240, "Re:Zero kara Hajimeru Isekai Seikatsu", 34561, "Re:Creators"),
    (34572, "Black Clover", 889, "Black Lagoon"),
    (38691, "Dr. Stone", 3312, "Dr. Slump"),
    (34798, "Yuru Camp△", 10495, "Yuru Yuri"),
    (9919, "Ao no Exorcist", 21995, "Ao Haru Ride"),
    (4224, "Toradora!", 19559, "Otoko wa Tsurai yo: Torajirou Wasurenagusa"),
    (2167, "Clannad", 1530, "Kanon (2006)"),  # Key and Kyoto Animation both
    (9253, "Steins;Gate", 4975, "ChäoS;HEAd"),
    (627, "Major S1", 4224, "Toradora!"),
]

RECAPS = [
    (38972, "JoJo no Kimyou na Bouken Part 5: Ougon no Kaze Recaps"),
    (40761, "Fate/Grand Order: Zettai Majuu Sensen Babylonia Recaps"),
    (23701, "Toradora! Recap"),
    (36032, "Air Recap"),  # "AIR 総集編"
    (23775, "Shingeki no Kyojin Movie 1: Guren no Yumiya"),  # "…cap of episodes 1-13." (the cut "Recap")
    (29755, "Haikyuu!! Movie 1: Owari to Hajimari"),  # "First Haikyuu!! recap movie."
    (4596, "Code Geass: Hangyaku no Lelouch Special Edition - Black Rebellion"),  # "OVA summarizing all 25 ..."
    (32869, "Kuroko no Basket Movie 1: Winter Cup - Kage to Hikari"),  # "総集編" in the Japanese name
]
MUSIC_VIDEOS = [(34240, "Shelter"), (12079, "Black★Rock Shooter")]
# Recommendable, though their texts talk of recaps, compilations or summaries.
NOT_RECAPS = [
    (39576, "Goblin Slayer: Goblin's Crown"),  # "First 25 minute is a recap of season 1." and then a new story
    (6800, "Transformers: Scramble City"),  # "Beginning with a recap of ..."
    (1462, "Memories"),  # "a compilation of three standalone short films"
    (232, "Cardcaptor Sakura"),  # "recapturing all the Cards"
    (2045, "Mahou no Tenshi Creamy Mami: Eien no Once More"),  # half recap, half new story
    (16498, "Shingeki no Kyojin"),
]

# (an entry, the first entry its franchise offers a newcomer)
FIRST_ENTRIES = [
    (40956, "Enen no Shouboutai: Ni no Shou", 38671, "Enen no Shouboutai"),
    (40028, "Shingeki no Kyojin: The Final Season", 16498, "Shingeki no Kyojin"),
    (18397, "Shingeki no Kyojin OVA", 16498, "Shingeki no Kyojin"),
    (34566, "Boruto: Naruto Next Generations", 20, "Naruto"),
    (666, "JoJo no Kimyou na Bouken", 14719, "JoJo no Kimyou na Bouken (TV)"),  # the 1993 OVA came first
    (1723, "Clannad Movie", 2167, "Clannad"),  # the movie came out a month before the TV series
    (31181, "Owarimonogatari", 5081, "Bakemonogatari"),
    (30484, "Steins;Gate 0", 9253, "Steins;Gate"),
    (136, "Hunter x Hunter", 11061, "Hunter x Hunter (2011)"),  # the remake: 4x the 1999 series' members
    (32281, "Kimi no Na wa.", 32281, "Kimi no Na wa."),  # alone
]


def _all_ids() -> list[tuple[int, str]]:
    pairs = [(a, name_a) for a, name_a, _, _ in SAME_FRANCHISE + DIFFERENT_FRANCHISES + FIRST_ENTRIES]
    pairs += [(b, name_b) for _, _, b, name_b in SAME_FRANCHISE + DIFFERENT_FRANCHISES + FIRST_ENTRIES]
    return sorted(set(pairs + RECAPS + MUSIC_VIDEOS + NOT_RECAPS))


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    """The real metadata table (its ``aired`` is the raw file's "Aired" text)."""
    return read_metadata(SAMPLE / "anime.csv.zip", SAMPLE / "anime_with_synopsis.csv.zip").table


@pytest.fixture(scope="module")
def row_of(catalogue: pd.DataFrame) -> dict[int, int]:
    return {int(anime_id): row for row, anime_id in enumerate(catalogue["anime_id"])}


@pytest.fixture(scope="module")
def franchises(catalogue: pd.DataFrame) -> Franchises:
    return build_franchises(catalogue)


# ---------------------------------------------------------------------------------------------------- real catalogue
def test_the_tables_name_real_anime(catalogue: pd.DataFrame, row_of: dict[int, int]) -> None:
    names = catalogue["name"].tolist()
    assert [(anime_id, names[row_of[anime_id]]) for anime_id, _ in _all_ids()] == _all_ids()


@pytest.mark.parametrize(("a", "name_a", "b", "name_b"), SAME_FRANCHISE,
                         ids=[f"{p[1]} ~ {p[3]}" for p in SAME_FRANCHISE])
def test_same_franchise(franchises: Franchises, row_of: dict[int, int], a: int, name_a: str, b: int,
                        name_b: str) -> None:
    assert franchises.ids[row_of[a]] == franchises.ids[row_of[b]], f"{name_a} and {name_b} should be one franchise"


@pytest.mark.parametrize(("a", "name_a", "b", "name_b"), DIFFERENT_FRANCHISES,
                         ids=[f"{p[1]} / {p[3]}" for p in DIFFERENT_FRANCHISES])
def test_different_franchises(franchises: Franchises, row_of: dict[int, int], a: int, name_a: str, b: int,
                              name_b: str) -> None:
    assert franchises.ids[row_of[a]] != franchises.ids[row_of[b]], f"{name_a} and {name_b} are different shows"


def test_content_features_add_links_but_never_the_look_alikes(catalogue: pd.DataFrame,
                                                               row_of: dict[int, int]) -> None:
    """Content features (here random unit vectors, near-orthogonal, with Air's and Air Movie's made the same) link
    what titles and studios alone cannot: "Air Movie" is Toei's, "Air" Kyoto Animation's."""
    rng = np.random.default_rng(0)
    content = rng.normal(size=(len(catalogue), 256)).astype(np.float32)
    content[row_of[713]] = content[row_of[101]]
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    titles_only = build_franchises(catalogue).ids
    with_content = build_franchises(catalogue, content).ids
    air, air_movie = row_of[101], row_of[713]
    assert titles_only[air] != titles_only[air_movie] and with_content[air] == with_content[air_movie]
    for a, _, b, _ in DIFFERENT_FRANCHISES:
        assert with_content[row_of[a]] != with_content[row_of[b]]


@pytest.mark.parametrize(("anime_id", "name"), RECAPS + MUSIC_VIDEOS, ids=[name for _, name in RECAPS + MUSIC_VIDEOS])
def test_recaps_and_music_videos_are_unrecommendable(franchises: Franchises, row_of: dict[int, int], anime_id: int,
                                                     name: str) -> None:
    assert franchises.unrecommendable[row_of[anime_id]], name


@pytest.mark.parametrize(("anime_id", "name"), NOT_RECAPS, ids=[name for _, name in NOT_RECAPS])
def test_look_alike_recaps_stay_recommendable(franchises: Franchises, row_of: dict[int, int], anime_id: int,
                                              name: str) -> None:
    assert not franchises.unrecommendable[row_of[anime_id]], name


def test_every_music_video_is_unrecommendable(catalogue: pd.DataFrame, franchises: Franchises) -> None:
    music = (catalogue["type"] == "Music").to_numpy()
    assert music.sum() > 1000 and franchises.unrecommendable[music].all()
    assert franchises.unrecommendable.mean() < 0.15  # ~1,470 music videos and ~350 recaps of 17,562


@pytest.mark.parametrize(("entry", "name", "first", "first_name"), FIRST_ENTRIES,
                         ids=[f"{p[1]} -> {p[3]}" for p in FIRST_ENTRIES])
def test_first_entry(franchises: Franchises, row_of: dict[int, int], entry: int, name: str, first: int,
                     first_name: str) -> None:
    assert franchises.first_entry[row_of[entry]] == row_of[first], f"{name}: a newcomer starts with {first_name}"


def test_release_order(catalogue: pd.DataFrame, franchises: Franchises, row_of: dict[int, int]) -> None:
    seasons = [16498, 25777, 35760, 38524, 40028]  # Attack on Titan seasons 1, 2, 3, 3 part 2, the final one
    positions = [franchises.order[row_of[anime_id]] for anime_id in seasons]
    assert positions == sorted(positions) and positions[0] == 0
    rows = franchises.members_of(row_of[38671])
    assert catalogue["anime_id"].to_numpy()[rows].tolist() == [38671, 40956, 45999]  # Fire Force, season 2, mini
    assert franchises.order[row_of[1723]] < franchises.order[row_of[2167]]  # Clannad Movie (Sep 2007) < TV (Oct)


def test_shape_and_consistency(catalogue: pd.DataFrame, franchises: Franchises) -> None:
    n = len(catalogue)
    assert franchises.ids.dtype == np.int32 and franchises.ids.shape == (n,)
    first_rows = np.unique(franchises.ids, return_index=True)[1]  # each franchise's first row, by id
    assert first_rows.size == franchises.count == franchises.ids.max() + 1 and (np.diff(first_rows) > 0).all()
    assert (franchises.ids[franchises.first_entry] == franchises.ids).all()
    sizes = np.bincount(franchises.ids)
    # positions 0..size-1 within each franchise, each once
    assert (np.bincount(franchises.ids, weights=franchises.order) == sizes * (sizes - 1) / 2).all()
    assert (franchises.order < sizes[franchises.ids]).all()
    # a franchise with a recommendable entry starts with one
    has_recommendable = np.bincount(franchises.ids, weights=~franchises.unrecommendable) > 0
    assert not franchises.unrecommendable[franchises.first_entry][has_recommendable[franchises.ids]].any()
    assert 0.3 < (sizes[franchises.ids] > 1).mean() < 0.7


def test_build_is_fast(catalogue: pd.DataFrame) -> None:
    """The server builds the franchises at start (well under a second; generous here for a loaded machine)."""
    started = time.perf_counter()
    build_franchises(catalogue)
    assert time.perf_counter() - started < 5.0


def test_without_aired_or_synopsis(catalogue: pd.DataFrame, franchises: Franchises, row_of: dict[int, int]) -> None:
    """The serving catalogue may lack both: start dates come from premiered/year, rule 5 and synopsis recaps go."""
    plain = build_franchises(catalogue.drop(columns=["aired", "synopsis"]))
    assert plain.first_entry[row_of[40956]] == row_of[38671]
    assert plain.unrecommendable[row_of[38972]] and not plain.unrecommendable[row_of[23775]]
    assert plain.ids[row_of[38000]] != plain.ids[row_of[47398]]  # Kimetsu Gakuen was linked by its synopsis


# ---------------------------------------------------------------------------------------------------- known answers
@pytest.mark.parametrize(("title", "key"), [
    ("Shingeki no Kyojin Season 3 Part 2", ("shingeki", "no", "kyojin")),
    ("Shingeki no Kyojin: The Final Season", ("shingeki", "no", "kyojin")),
    ("Shingeki no Kyojin Movie 1: Guren no Yumiya", ("shingeki", "no", "kyojin")),
    ("Golden Kamuy 2nd Season OVA", ("golden", "kamuy")),
    ("Major 2nd (TV) 2nd Season", ("major",)),
    ("Hunter x Hunter (2011)", ("hunter", "x", "hunter")),
    ("Fate/Zero 2nd Season", ("fate",)),
    ("Clannad ~After Story~", ("clannad",)),
    ("Steins;Gate 0", ("steins", "gate")),
    ("Re:Zero kara Hajimeru Isekai Seikatsu", ("re", "zero", "kara", "hajimeru", "isekai", "seikatsu")),
    ("Gintama°", ("gintama",)),
    ("JoJo's Bizarre Adventure: Golden Wind", ("jojos", "bizarre", "adventure")),
    ("Zoku Owarimonogatari", ("owarimonogatari",)),
    ("Pokémon", ("pokemon",)),
    ("Tokyo 2164", ("tokyo", "2164")),  # numbers of 3 digits or more are names, not counters
    ("Mob Psycho 100 II", ("mob", "psycho", "100")),
    ("Sonic X", ("sonic", "x")),
    ("The Four Seasons", ("the", "four", "seasons")),
    ("Re: Cutey Honey", ()),  # "re" alone: too short to be a key
])
def test_title_key(title: str, key: tuple[str, ...]) -> None:
    assert title_key(title) == key


def test_japanese_key() -> None:
    assert japanese_key("ソードアート・オンライン オルタナティブ ガンゲイル・オンライン") == "ソードアート・オンライン"
    assert japanese_key("劇場版「進撃の巨人」前編～紅蓮の弓矢～") == "進撃の巨人"
    assert japanese_key("銀魂°") == "銀魂"
    assert japanese_key("AIR") == japanese_key("紅 OVA") == japanese_key(None) == ""


def _table(rows: list[tuple]) -> pd.DataFrame:
    columns = ["anime_id", "name", "english_name", "type", "studios", "aired", "members", "synopsis"]
    table = pd.DataFrame(rows, columns=columns)
    return table.assign(japanese_name=None, synonyms=[[] for _ in rows], premiered=None, year=None)


def test_known_answer() -> None:
    table = _table([
        (1, "Kaze no Tani", "Valley", "TV", ["Studio A"], "Apr 1, 2011 to Jun 1, 2011", 5000, "A story."),
        (2, "Kaze no Tani 2nd Season", None, "TV", ["Studio B"], "Apr 1, 2013", 3000, None),
        (3, "Kaze no Tani Movie: Owari", None, "Movie", [], "Jan 5, 2010", 4000, None),
        (4, "Kaze Gear", None, "TV", ["Studio A"], "2012", 900, None),
        (5, "Hoshi", None, "TV", ["Studio B"], "Jul 1, 2000", 800, None),
        (6, "Hoshi Recap", None, "Special", ["Studio B"], "Aug 1, 2000", 100, None),
        (7, "Hoshi", None, "Movie", ["Studio C"], "1990", 50, "Another star."),
        (8, "Kaze no Tani", None, "Music", [], "2011", 70, None),
        (9, "Tsuki: Hoshi Next", None, "TV", ["Studio B"], "Jan 1, 2005", 400, None),
        (10, "Kaze Gakuen", None, "ONA", [], "Feb 1, 2014", 60, "A school spin-off of Kaze no Tani ."),
        (11, "Umi", None, "OVA", [], "2001", 10, "Recap of episodes 1-13."),
    ])
    result = build_franchises(table)
    # 1-3, the music video 8 and the spin-off 10 (named in its synopsis); 5, 6 and 9 ("Tsuki: Hoshi Next" opens its
    # subtitle with "hoshi", same studio); "Kaze Gear" and the 1990 "Hoshi" (another studio) alone
    assert result.ids.tolist() == [0, 0, 0, 1, 2, 2, 3, 0, 2, 0, 4]
    assert result.unrecommendable.tolist() == [False] * 5 + [True, False, True, False, False, True]
    assert result.order.tolist() == [2, 3, 0, 0, 0, 1, 0, 1, 2, 4, 0]  # "2011" (no month) before "Apr 1, 2011"
    # the TV series, though the movie came out first; the music video is never a first entry
    assert result.first_entry.tolist() == [0, 0, 0, 3, 4, 4, 6, 0, 4, 0, 10]


def test_weak_keys_need_evidence() -> None:
    table = _table([
        (1, "Hoshi", None, "TV", ["Studio B"], "2000", 800, None),
        (2, "Hoshi", None, "Movie", ["Studio C"], "2001", 50, None),
        (3, "Hoshi Gear", None, "TV", ["Studio B"], "2002", 50, None),
    ])
    assert build_franchises(table).ids.tolist() == [0, 1, 2]  # no shared studio; a weak prefix needs content
    content = np.eye(3, dtype=np.float32)
    content[1] = content[0]
    assert build_franchises(table, content).ids.tolist() == [0, 0, 1]
    content[2] = content[0]
    assert build_franchises(table, content).ids.tolist() == [0, 0, 0]


def test_explain_names_the_rule() -> None:
    explain: list[tuple[int, int, str]] = []
    ids = franchise_ids(["Code Geass: Hangyaku no Lelouch", "Code Geass: Boukoku no Akito", "Air", "Air Gear"],
                        [None] * 4, [[]] * 4, [["Sunrise"], ["Sunrise"], ["Toei"], ["Toei"]],
                        ["TV", "Movie", "TV", "TV"], explain=explain)
    assert ids.tolist() == [0, 0, 1, 2]
    assert explain == [(0, 1, "same key: code geass")]


def test_entry_order_and_the_entry_point() -> None:
    """The most watched TV series, film, OVA or ONA, the earliest among equals; without one, the most watched."""
    ids = np.zeros(3, dtype=np.int32)
    starts = np.array([19990000, 20110000, 20130000])
    order, first = entry_order(ids, ["TV", "TV", "Special"], starts, np.array([1, 2, 3]), np.array([100, 400, 500]))
    assert order.tolist() == [0, 1, 2] and first.tolist() == [1, 1, 1]  # the remake; never a special
    _, first = entry_order(ids[:2], ["OVA", "TV"], starts[:2], np.array([1, 2]), np.array([600, 100]))
    assert first.tolist() == [0, 0]  # an original OVA before the later TV series it spawned (FLCL)
    _, first = entry_order(ids, ["TV", "TV", "Movie"], starts, np.array([1, 2, 3]), np.array([400, 300, 200]))
    assert first.tolist() == [0, 0, 0]  # season 1, watched by more than season 2
    _, first = entry_order(ids, ["TV", "TV", "Movie"], starts, np.array([1, 2, 3]), np.array([400, 400, 200]))
    assert first.tolist() == [0, 0, 0]  # equals: the earliest
    _, first = entry_order(ids, ["Special", "Special", "Music"], starts, np.array([1, 2, 3]), np.array([300, 40, 500]))
    assert first.tolist() == [2, 2, 2]  # none of those kinds: the most watched entry


def test_start_dates() -> None:
    starts = start_dates(["Apr 4, 2013 to Jun 27, 2013", "Apr, 2013", "2013", "Unknown", None, None],
                         [None, None, None, "Fall 2001", "Winter 2021", None], [2013, 2013, None, 2001, 2021, None])
    assert starts.tolist() == [20130404, 20130400, 20130000, 20011000, 20210100, UNKNOWN_START]


def test_is_unrecommendable_without_synopses() -> None:
    flags = is_unrecommendable(["Toradora! Recap", "Shelter", "Digest", "Voyeur's Digest", "Air"],
                               [None, None, None, None, None], [None, None, None, None, "AIR 総集編"],
                               ["OVA", "Music", "Special", "OVA", "Special"])
    assert flags.tolist() == [True, True, True, False, True]
