"""Title search's index on its own (src/engine/title_index.py): tiny known answers."""
from __future__ import annotations

import numpy as np

from src.engine.title_index import EXACT, PREFIX, SUBSTRING, TitleIndex, normalise_title

TITLES = [["Naruto", "ナルト"], ["Naruto: Shippuuden", "Naruto Shippuden"], ["Boruto: Naruto Next Generations"],
          ["Cowboy Bebop"], ["Bebop & Rocksteady"], ["Monster"]]
MEMBERS = np.array([500, 400, 100, 300, 5, 200])


def test_count_is_the_number_of_anime_with_a_title_containing_the_text():
    index = TitleIndex(TITLES, MEMBERS)
    for text in ["naruto", "bebop", "o", "t", "monster", "ナルト", "shippu", "zzz", "naruto: s", ""]:
        expected = sum(1 for titles in TITLES if text and any(text in normalise_title(t) for t in titles))
        assert index.count(text) == expected, text


def test_exact_then_prefix_then_substring_each_by_popularity():
    index = TitleIndex(TITLES, MEMBERS)
    assert index.search("naruto", 10) == [(0, EXACT), (1, PREFIX), (2, SUBSTRING)]
    assert index.search("bebop", 10) == [(4, PREFIX), (3, SUBSTRING)]
    assert index.search("naruto", 2) == [(0, EXACT), (1, PREFIX)]
