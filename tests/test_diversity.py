"""Franchise-aware lists (src/engine/diversity.py) on tiny known answers."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from src.engine.diversity import FranchiseRules, franchise_top_k
from src.engine.ranking import top_k

# Eight anime: 0-2 are one franchise (0 its first entry: season 1, then season 2, then a movie), 3-4 another
# (3 first), 5, 6 and 7 stand alone.
FRANCHISE = np.array([0, 0, 0, 1, 1, 2, 3, 4])
FIRST = np.array([0, 0, 0, 3, 3, 5, 6, 7])
RULES = FranchiseRules(FRANCHISE, FIRST, seen_cap=1)
SCORES = np.array([[0.5, 0.9, 0.8, 0.2, 0.7, 0.6, 0.4, 0.3]])


def known(*rows: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(rows)), (np.zeros(len(rows), int), rows)), shape=(1, 8))


def test_an_unseen_franchise_enters_at_its_first_entry_once():
    # season 2 (0.9) stands for season 1; the movie (0.8) is the same franchise again; anime 4 stands for 3
    assert franchise_top_k(SCORES, 5, RULES).tolist() == [[0, 3, 5, 6, 7]]


def test_a_seen_franchise_goes_on_where_the_person_is():
    # season 1 known: season 2 is the next thing to watch, and only one entry of the franchise is shown
    assert franchise_top_k(SCORES, 3, RULES, exclude=known(0)).tolist() == [[1, 3, 5]]


def test_a_seen_franchise_is_uncapped_by_default():
    # the default (seen_cap None): the entries of a franchise the person watches, as they rank
    rules = FranchiseRules(FRANCHISE, FIRST)
    assert franchise_top_k(SCORES, 4, rules, exclude=known(0)).tolist() == [[1, 2, 3, 5]]


def test_a_similar_anime_list_shows_one_entry_of_its_own_franchise():
    rules = FranchiseRules(FRANCHISE, FIRST).for_similar()
    assert franchise_top_k(SCORES, 3, rules, exclude=known(0), seen=[{0}]).tolist() == [[1, 3, 5]]


def test_a_franchise_whose_first_entry_may_not_be_shown_is_passed_over():
    allowed = np.ones(8, dtype=bool)
    allowed[3] = False  # filtered out: anime 4 (a later entry) is not shown in its place
    assert franchise_top_k(SCORES, 4, RULES, allowed=allowed).tolist() == [[0, 5, 6, 7]]


def test_a_cap_of_two_allows_two_entries_of_a_seen_franchise_and_one_of_an_unseen_one():
    rules = FranchiseRules(FRANCHISE, FIRST, seen_cap=2)
    assert franchise_top_k(SCORES, 4, rules, exclude=known(0)).tolist() == [[1, 2, 3, 5]]  # 4 still stands for 3


def test_lists_are_padded_when_the_catalogue_runs_out_and_rows_are_ranked_alone():
    scores = np.vstack([SCORES, SCORES[:, ::-1]])
    lists = franchise_top_k(scores, 8, RULES)
    assert lists[0].tolist() == [0, 3, 5, 6, 7, -1, -1, -1]
    assert lists[1].tolist() == franchise_top_k(scores[1], 8, RULES)[0].tolist()


def test_a_long_catalogue_is_searched_past_the_first_candidates():
    # 300 entries of one franchise score highest; the one other anime is found beyond the first 4k + 40
    franchise = np.r_[np.zeros(300, int), 1]
    rules = FranchiseRules(franchise, np.r_[np.zeros(300, int), 300])
    scores = np.r_[np.linspace(1, 0.5, 300), 0.1]
    assert franchise_top_k(scores, 2, rules).tolist() == [[0, 300]]


def test_without_rules_it_is_top_k():
    tiebreak = np.arange(8)[::-1]
    np.testing.assert_array_equal(franchise_top_k(SCORES, 5, None, tiebreak=tiebreak),
                                  top_k(SCORES, 5, tiebreak=tiebreak))
