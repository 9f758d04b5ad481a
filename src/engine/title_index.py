"""Forgiving title search over every title of every anime (name, English name, Japanese name, synonyms).

Normalisation (``search_key``): Unicode compatibility forms folded (full-width letters), Latin accents dropped
("Pokémon" = "pokemon"), case-folded, apostrophes dropped ("JoJo's" = "jojos"), "×" read as "x", and every other
run of punctuation or spacing made one space: "Steins;Gate" = "steins gate", "Re:Zero" = "re zero",
"One-Punch Man" = "one punch man". A title is also known without its spaces ("steinsgate") and, whole, without a
trailing qualifier in brackets ("Jujutsu Kaisen (TV)" = "jujutsu kaisen", "Hunter x Hunter (2011)").

Abbreviations (``title_acronyms``), derived from each Latin-script title of two or more words, and from its
head (the part before ": ", " - ", " ~" or " (") when that has two or more words too:

- the initials of its words, split at spaces, punctuation and hyphens: "Attack on Titan" -> "aot",
  "One-Punch Man" -> "opm", "Shingeki no Kyojin" -> "snk", "Sword Art Online" -> "sao". Connectors count as
  words: "Hunter x Hunter" -> "hxh", "Bebop & Rocksteady" -> "b&r"; a number stays whole: "Dragon Ball Z" ->
  "dbz", "Mob Psycho 100" -> "mp100";
- the same with the first word's first two syllables, i.e. its initial and the consonant after its first vowels,
  the way fans shorten reduplicated romaji: "Jujutsu Kaisen" -> "jjk", "JoJo's Bizarre Adventure" -> "jjba";
- the same with each compound word split in two, where a compound is a word of 8 or more letters made of two
  words of 4 or more letters that each stand alone in the titles of at least 5 anime (465 such words in the
  catalogue below): "Fullmetal Alchemist" -> "fma" ("full" + "metal"; and "Fullmetal Alchemist: Brotherhood" ->
  "fmab", and from its head "fma"), "Mahoutsukai no Yome" -> "mtny".

Only acronyms of 3 to 10 characters are kept, and a query is looked up as one when it is a single word of
letters, digits and "&" (dots dropped: "f.m.a."). On the 17,562 anime of the 2020 MyAnimeList catalogue these
rules give 30,199 distinct acronyms (15,437 anime have one or more), of which 4,067 (13.5 %) abbreviate more
than one anime ("aot": 7 anime, "fma": 10, "dbz": 19); ``python -m bench.search_latency`` measures it again. The
ranking below settles a shared acronym, so the famous show comes first.

Tiers, best first; within a tier the main series comes first (TV, then every other type, music videos last),
then the anime with more members, then the lower index, so the order is total and deterministic:

0. EXACT: the query is a whole title (normalised, or without spaces, or without its trailing qualifier);
1. PREFIX or ABBREVIATION: a title starts with the query, or the query is one of its acronyms. One tier, so
   popularity decides between "aot" read as Attack on Titan and as the start of "AOTU Shijie";
2. SUBSTRING at a word: the query starts a word inside a title ("bebop" in "Cowboy Bebop");
3. PREFIX once spaces are ignored ("rezero" and "Re:Zero kara ..."; "bebop" and "Be-Bop Highschool");
4. ALL_WORDS: every query word starts a word of the same title, in any order ("brotherhood fullmetal"); first
   the titles of no more words than the query (matched whole), as an exact title comes before a prefix;
5. FUZZY: every query word starts a word of the same title, or is close to one: rapidfuzz's ``fuzz.ratio``
   (normalised Indel similarity) >= 80 for a query word of 4 or more characters, i.e. one typo (a wrong, swapped,
   missing or extra letter) from 5 characters, only a missing or extra one in 4, two typos from 10 ("naruot" ->
   "naruto" 83, "evangelon" -> "evangelion" 95, "bebob" -> "bebop" 80). The closest first: the least sum over
   the query words of 100 - the best ratio of a word of the title ("clanad": "Clannad" 92 before "Land" 80),
   then the titles matched whole, then the main series and members as in every tier. Searched only when tiers
   0-4 find nothing: a typo is what a query that matches no word means, and a query that does match needs no
   guesses after its real matches (nor a count inflated by them);
6. SUBSTRING inside a word ("na" in "Clannad"); found close to a word too, it ranks in tier 5.

A query matching nothing finds nothing: no guess scores under the cutoff. Scoring whole titles with
``fuzz.WRatio`` took 35 ms a query over the 38,000 titles, ``fuzz.ratio`` over the 36,000 distinct title words
1 ms a query word; here rapidfuzz scores only the words that can reach the cutoff: of the lengths it allows, and
whose characters differ from the query word's by no more distinct characters than the Indel distance it allows
(each such character costs one insertion or deletion at least; one bitmask of characters per word makes that a
popcount). Literal matches use no Python loop over titles either: every title sits in one array of code points,
the positions of the query's rarest pair of adjacent characters are one slice of a prebuilt index, and its other
characters filter them.
"""
from __future__ import annotations

import bisect
import math
import re
import unicodedata
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from rapidfuzz import fuzz, process

# Match kinds: why an anime was found. Labels only: the order of results is the tiers' (module docstring).
EXACT, PREFIX, SUBSTRING = 3, 2, 1
ABBREVIATION, ALL_WORDS, FUZZY = 4, 5, 6

(_EXACT_TIER, _PREFIX_TIER, _WORD_SUBSTRING_TIER, _SPACELESS_PREFIX_TIER, _ALL_WORDS_TIER, _FUZZY_TIER,
 _INNER_SUBSTRING_TIER, _NO_MATCH) = range(8)

FUZZY_CUTOFF = 80.0  # fuzz.ratio of a query word and a title word
FUZZY_MIN_LENGTH = 4  # shorter query words match only literally: "one" is not a typo of "ones" or "done"
ACRONYM_LENGTHS = (3, 10)
COMPOUND_MIN_LENGTH, COMPOUND_PART_MIN_LENGTH, COMPOUND_PART_MIN_ANIME = 8, 4, 5

_SEPARATOR, _SPACE = ord("\n"), ord(" ")
_PAIR_SHIFT = 21  # code points are below 2**21: two adjacent ones make one int64 code, the first in the high bits
_MAIN_SERIES, _OTHER_TYPE, _MUSIC = 0, 1, 2

_ACCENTS = re.compile("[\u0300-\u036f]+")  # Latin combining accents only: Japanese voicing marks must stay
_APOSTROPHES = re.compile("['\u2018\u2019`\u00b4]")
_NON_WORD = re.compile(r"(?:[^\w\n]|_)+")  # "\n" kept: many titles are normalised at once, one per line
_TRAILING_QUALIFIER = re.compile(r"\s*[(\[][^()\[\]]*[)\]]\s*$")
_HEAD_END = re.compile(r":\s|\s[-~]|\s\(")
_ACRONYM_WORDS = re.compile(r"[a-z0-9]+|&")
_ACRONYM_QUERY = re.compile(r"[a-z0-9&.]+")
_VOWELS = frozenset("aeiouy")


def normalise_title(text: str) -> str:
    """Case-folded, whitespace collapsed, so never a tab or newline; the index compares ``search_key``s, this
    keeps the query as typed for messages."""
    return " ".join(str(text).split()).casefold()


def search_key(text: str) -> str:
    """The form titles and queries are compared in: words of letters and digits, one space between."""
    return _keys([_folded(str(text).replace("\n", " "))])[0]


def title_acronyms(title: str, compounds: dict[str, tuple[str, str]] | None = None) -> set[str]:
    """The abbreviations fans may use for ``title`` (rules: module docstring); none for non-Latin titles.
    ``compounds``: word -> its two parts (``TitleIndex`` derives them from the catalogue)."""
    return _acronyms(_folded(title), compounds or {})


def type_rank(anime_type: str | None) -> int:
    """Main series first: TV, then every other type (ONA, OVA, movie, special, unknown), music videos last."""
    name = (anime_type or "").strip().casefold()
    if name == "tv":
        return _MAIN_SERIES
    return _MUSIC if name == "music" else _OTHER_TYPE


class TitleIndex:
    """Exact, prefix, abbreviation, substring, any-order-word and typo-tolerant title search (module docstring).

    Built once (a few tenths of a second for 17,562 anime); read-only afterwards, so threads may share it.
    """

    def __init__(self, titles_per_anime: Sequence[Sequence[str]], members: np.ndarray,
                 types: Sequence[str | None] | None = None) -> None:
        """``titles_per_anime[j]``: every title anime j is known by; ``types[j]``: its type ("TV", "Movie", ...)."""
        self._n_anime = n_anime = len(titles_per_anime)
        members = np.nan_to_num(np.asarray(members, dtype=np.float64))
        ranks = np.zeros(n_anime, dtype=np.int8) if types is None else np.array([type_rank(t) for t in types])
        # Each anime's place within a tier: main series, then members, then index; unique, so no ties are left.
        self._order_rank = np.empty(n_anime, dtype=np.int64)
        self._order_rank[np.lexsort((np.arange(n_anime), -members, ranks))] = np.arange(n_anime)

        own_titles = [list(dict.fromkeys(title for title in titles if title)) for titles in titles_per_anime]
        distinct = list(dict.fromkeys(title for titles in own_titles for title in titles))
        folded = _folded_all(distinct)
        key_of = dict(zip(distinct, _keys(folded), strict=True))
        # each anime's distinct keys, one anime after another
        keys, key_anime = [], []
        for index, titles in enumerate(own_titles):
            own = dict.fromkeys(key_of[title] for title in titles if key_of[title])
            keys.extend(own)
            key_anime.extend([index] * len(own))
        self._key_anime = np.array(key_anime, dtype=np.int64)
        self._build_exact(keys, own_titles)
        self._build_haystack(keys)
        anime_per_word = self._build_vocabulary(keys)
        self._build_acronyms(own_titles, dict(zip(distinct, folded, strict=True)), self._compounds(anime_per_word))

    @property
    def acronyms(self) -> dict[str, list[int]]:
        """Every derived acronym -> the anime it abbreviates (to measure how ambiguous they are)."""
        return self._acronyms

    # ------------------------------------------------------------------ building
    def _build_exact(self, keys: list[str], own_titles: list[list[str]]) -> None:
        """The keys without spaces, sorted (whole titles and prefixes once spaces are ignored), and the whole
        titles without their trailing qualifier."""
        spaceless = [key.replace(" ", "") for key in keys]
        order = sorted(range(len(keys)), key=spaceless.__getitem__)
        self._spaceless_keys = [spaceless[k] for k in order]
        self._spaceless_anime = self._key_anime[order]
        unqualified: dict[str, set[int]] = {}
        for index, titles in enumerate(own_titles):
            for title in titles:
                if _TRAILING_QUALIFIER.search(title):
                    key = search_key(_TRAILING_QUALIFIER.sub("", title))
                    for form in filter(None, (key, key.replace(" ", ""))):
                        unqualified.setdefault(form, set()).add(index)
        self._unqualified = {form: sorted(found) for form, found in unqualified.items()}

    def _build_haystack(self, keys: list[str]) -> None:
        """Every key in one array of code points, "\\n" before and after each, with each position's anime, and
        every position sorted by the pair of characters starting there (a pair's positions are then one slice)."""
        self._longest_key = max(map(len, keys), default=0)
        # padded past the end, so that the characters after a candidate position are always there to compare
        text = "\n" + "\n".join(keys) + "\n" * (self._longest_key + 2)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        self._haystack = codes.astype(np.uint16) if codes.max(initial=0) < 2**16 else codes.copy()
        # segments: "\n", key 0, "\n", key 1, ..., "\n" and the padding; a separator belongs to no anime (-1)
        segment_anime = np.full(2 * len(keys) + 1, -1, dtype=np.int32)
        segment_anime[1::2] = self._key_anime
        segment_lengths = np.ones(2 * len(keys) + 1, dtype=np.int64)
        segment_lengths[1::2] = [len(key) for key in keys]
        segment_lengths[-1] = len(text) - segment_lengths[:-1].sum()
        self._position_anime = np.repeat(segment_anime, segment_lengths)
        # Every position sorted by the pair of characters starting there (the last one, padding, starts none).
        # A query's rarest pair is far rarer than its rarest character, so there are far fewer candidates to
        # check: "bebop" has 241 places of "eb" where "b" has 7,989, "naruto" 1,512 of "ut" where "r" has 27,153.
        # Pairs sort by their first character, so the pairs a character starts are one run too: single characters
        # need no index of their own. Costs one int32 a position and 12 bytes a distinct pair: 3.3 MB + 0.4 MB
        # for the 820,091 positions and 33,319 pairs of the 17,562 anime of 2020, no more than the index by
        # character it replaces (3.3 MB and a dict of 0.6 MB).
        pairs = (self._haystack[:-1].astype(np.int64) << _PAIR_SHIFT) | self._haystack[1:]
        # by first character, then second: two stable sorts of characters, six times faster than of the codes
        self._by_pair = np.lexsort((self._haystack[1:], self._haystack[:-1])).astype(np.int32)
        self._pair_codes, first = np.unique(pairs[self._by_pair], return_index=True)
        self._pair_start = np.append(first, len(pairs)).astype(np.int32)  # pair k: _by_pair[start[k]:start[k + 1]]

    def _build_vocabulary(self, keys: list[str]) -> np.ndarray:
        """The distinct words of all keys, sorted (a prefix is then a range), each with the keys holding it; the
        same words by length, with their characters as bitmasks (the words a fuzzy match may reach). Returns how
        many anime have each word."""
        words = [key.split() for key in keys]
        self._n_keys = len(keys)
        self._key_word_count = np.array([len(set(key_words)) for key_words in words], dtype=np.int32)
        self._vocabulary = sorted({word for key_words in words for word in key_words})
        word_id = {word: i for i, word in enumerate(self._vocabulary)}
        ids = np.fromiter((word_id[word] for key_words in words for word in key_words), dtype=np.int64)
        holders = np.repeat(np.arange(len(keys), dtype=np.int64), [len(key_words) for key_words in words])
        pairs = np.unique(ids * max(len(keys), 1) + holders)  # (word, key) once each, by word then key
        pair_words = pairs // max(len(keys), 1)
        self._word_keys = (pairs % max(len(keys), 1)).astype(np.int32)
        self._word_start = np.searchsorted(pair_words, np.arange(len(self._vocabulary) + 1))
        lengths = np.array([len(word) for word in self._vocabulary], dtype=np.int64)
        by_length = np.argsort(lengths, kind="stable")
        self._words_by_length = [self._vocabulary[i] for i in by_length.tolist()]
        self._word_ids_by_length = by_length
        self._sorted_lengths = lengths[by_length]
        self._letter_masks = np.array([_letter_mask(word) for word in self._words_by_length], dtype=np.uint64)
        anime_words = np.unique(ids * max(self._n_anime, 1) + self._key_anime[holders])
        return np.bincount(anime_words // max(self._n_anime, 1), minlength=len(self._vocabulary))

    def _build_acronyms(self, own_titles: list[list[str]], folded_of: dict[str, str],
                        compounds: dict[str, tuple[str, str]]) -> None:
        found: dict[str, set[int]] = {}
        for index, titles in enumerate(own_titles):
            for title in titles:
                for acronym in _acronyms(folded_of[title], compounds):
                    found.setdefault(acronym, set()).add(index)
        self._acronyms = {acronym: sorted(anime) for acronym, anime in found.items()}

    def _compounds(self, anime_per_word: np.ndarray) -> dict[str, tuple[str, str]]:
        """Title words that are two other title words run together ("fullmetal" = "full" + "metal"): of at least
        8 letters, both parts of at least 4 and each alone in the titles of at least 5 anime; the first split."""
        common = {word for word, count in zip(self._vocabulary, anime_per_word.tolist(), strict=True)
                  if count >= COMPOUND_PART_MIN_ANIME and len(word) >= COMPOUND_PART_MIN_LENGTH}
        compounds = {}
        for word in self._vocabulary:
            if len(word) >= COMPOUND_MIN_LENGTH and word.isascii() and word.isalpha():
                for cut in range(COMPOUND_PART_MIN_LENGTH, len(word) - COMPOUND_PART_MIN_LENGTH + 1):
                    if word[:cut] in common and word[cut:] in common:
                        compounds[word] = (word[:cut], word[cut:])
                        break
        return compounds

    # ------------------------------------------------------------------ queries
    def search(self, text: str, limit: int, allowed: np.ndarray | None = None) -> list[tuple[int, int]]:
        """[(anime index, match kind)] best first, at most ``limit``; ``text`` as ``normalise_title`` leaves it;
        anime outside ``allowed`` (a boolean mask over the anime, when given) are never returned."""
        return self.search_and_count(text, limit, allowed)[0]

    def search_and_count(self, text: str, limit: int,
                         allowed: np.ndarray | None = None) -> tuple[list[tuple[int, int]], int]:
        """``search`` and ``count`` of one query at once: the matching, which costs most, done once."""
        matches = self._match(text, allowed)
        found = np.flatnonzero(matches.tiers < _NO_MATCH)
        total = len(found)
        if limit <= 0:
            return [], total
        within_tier = matches.closeness[found] * self._n_anime + self._order_rank[found]
        closeness_range = int(matches.closeness.max(initial=0)) + 1
        score = matches.tiers[found].astype(np.int64) * closeness_range * self._n_anime + within_tier
        if len(found) > limit:
            keep = np.argpartition(score, limit - 1)[:limit]
            found, score = found[keep], score[keep]
        best = found[np.argsort(score)]
        return list(zip(best.tolist(), matches.kinds[best].tolist(), strict=True)), total

    def count(self, text: str, allowed: np.ndarray | None = None) -> int:
        """How many anime ``text`` finds in all: ``search(text, count(text))`` returns every one of them."""
        return int(np.count_nonzero(self._match(text, allowed).tiers < _NO_MATCH))

    def _match(self, text: str, allowed: np.ndarray | None) -> _Matches:
        """Every anime's best match for the query, marked from the worst tier to the best."""
        matches = _Matches(self._n_anime)
        key = search_key(text)
        if not key:
            return matches
        words = sorted(set(key.split()), key=lambda word: (-len(word), word))
        anime, hit_tiers = self._literal(key)
        matches.mark(anime[hit_tiers == _INNER_SUBSTRING_TIER], _INNER_SUBSTRING_TIER, SUBSTRING)
        if len(words) > 1:
            self._mark_words(matches, *self._keys_with_every(words, fuzzy=False), len(words), _ALL_WORDS_TIER,
                             ALL_WORDS)
        spaceless = key.replace(" ", "")
        low = bisect.bisect_left(self._spaceless_keys, spaceless)
        whole = bisect.bisect_right(self._spaceless_keys, spaceless, low)
        high = bisect.bisect_left(self._spaceless_keys, spaceless + "\U0010ffff", whole)
        matches.mark(self._spaceless_anime[low:high], _SPACELESS_PREFIX_TIER, PREFIX)
        matches.mark(anime[hit_tiers == _WORD_SUBSTRING_TIER], _WORD_SUBSTRING_TIER, SUBSTRING)
        if (acronym := _as_acronym(text)) in self._acronyms:
            matches.mark(self._acronyms[acronym], _PREFIX_TIER, ABBREVIATION)
        matches.mark(anime[hit_tiers == _PREFIX_TIER], _PREFIX_TIER, PREFIX)
        matches.mark(self._spaceless_anime[low:whole], _EXACT_TIER, EXACT)
        for form in dict.fromkeys((key, spaceless)):
            matches.mark(self._unqualified.get(form, []), _EXACT_TIER, EXACT)
        matches.mark(anime[hit_tiers == _EXACT_TIER], _EXACT_TIER, EXACT)
        # as indices: setting the few hidden anime costs less than a pass over a mask of them all
        hidden = None if allowed is None else np.flatnonzero(~np.asarray(allowed, dtype=bool))
        matches.hide(hidden)
        if not np.any(matches.tiers <= _ALL_WORDS_TIER):  # no word of any title matches: look for typos
            inside_words = matches.tiers == _INNER_SUBSTRING_TIER
            close, shortfall = self._keys_with_every(words, fuzzy=True)
            self._mark_words(matches, close, shortfall, len(words), _FUZZY_TIER, FUZZY)
            # a title containing the query inside a word ranks as a close match, but keeps its kind
            close_anime = self._key_anime[close]
            matches.kinds[close_anime] = np.where(inside_words[close_anime], SUBSTRING, FUZZY)
            matches.hide(hidden)
        return matches

    def _mark_words(self, matches: _Matches, keys: np.ndarray, shortfall: np.ndarray, n_words: int, tier: int,
                    kind: int) -> None:
        """Marks the anime of word-matched ``keys``, closer first: the query words' ``shortfall`` from a perfect
        ratio (0 when all are as typed), then the titles of no more words than the query's (the title matched
        whole, as an exact title comes before a prefix)."""
        anime = self._key_anime[keys]
        per_key = np.round(shortfall * 100).astype(np.int64) * 2 + (self._key_word_count[keys] > n_words)
        matches.mark(anime, tier, kind)
        matches.closeness[anime] = per_key.max(initial=0)
        np.minimum.at(matches.closeness, anime, per_key)  # an anime with several such titles: its closest

    def _literal(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(anime, tier) of every place ``key`` occurs in a key: the positions of its rarest pair of adjacent
        characters (of its character, when it has one) give the candidate places, its other characters filter
        them, and the characters around a place give the tier."""
        codes = [ord(character) for character in key]
        nothing = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int8)
        if len(key) > self._longest_key:
            return nothing
        # ranges of pair codes: each pair of the key, or every pair a single character starts
        if len(codes) == 1:
            low, high = [codes[0] << _PAIR_SHIFT], [(codes[0] + 1) << _PAIR_SHIFT]
        else:
            low = [first << _PAIR_SHIFT | second for first, second in pairwise(codes)]
            high = [code + 1 for code in low]
        starts = self._pair_start[np.searchsorted(self._pair_codes, low)]
        sizes = self._pair_start[np.searchsorted(self._pair_codes, high)] - starts
        anchor = int(np.argmin(sizes))
        if sizes[anchor] == 0:  # a pair (or a character) no title has
            return nothing
        places = self._by_pair[starts[anchor]:starts[anchor] + sizes[anchor]] - anchor
        places = places[places >= 1]
        for offset, code in enumerate(codes):
            if offset not in (anchor, anchor + 1) and len(places):
                places = places[self._haystack[places + offset] == code]
        before, after = self._haystack[places - 1], self._haystack[places + len(codes)]
        tiers = np.where(before == _SEPARATOR, np.where(after == _SEPARATOR, _EXACT_TIER, _PREFIX_TIER),
                         np.where(before == _SPACE, _WORD_SUBSTRING_TIER, _INNER_SUBSTRING_TIER))
        return self._position_anime[places], tiers.astype(np.int8)

    def _keys_with_every(self, words: list[str], fuzzy: bool) -> tuple[np.ndarray, np.ndarray]:
        """The keys (positions, ascending) that have, for every query word, a word starting with it or, with
        ``fuzzy``, a word close to it, and for each such key the sum over the query words of 100 - the best
        ``fuzz.ratio`` of one of its words (0 when every word is there as typed). ``words``: distinct, longest first,
        as they rule out the most; stops once no key is left."""
        keys = shortfall = None  # the keys having every word so far; None before the first word
        for word in words:
            low = bisect.bisect_left(self._vocabulary, word)
            high = bisect.bisect_left(self._vocabulary, word + "\U0010ffff", low)
            as_typed = self._word_keys[self._word_start[low]:self._word_start[high]]
            if fuzzy and len(word) >= FUZZY_MIN_LENGTH:
                # Only the few keys holding the word as typed or a close word can have it: working on those alone,
                # not on arrays over all 39,000 keys, is what makes a typo query cost little more than another.
                found, missing = self._closest(word, as_typed)
                if keys is None:
                    keys, shortfall = found, missing
                else:
                    keys, ours, theirs = np.intersect1d(keys, found, assume_unique=True, return_indices=True)
                    shortfall = shortfall[ours] + missing[theirs]
            else:  # found only as typed, no shortfall: a mask over the keys, as a short prefix may have thousands
                has = np.zeros(self._n_keys, dtype=bool)
                has[as_typed] = True
                if keys is None:
                    keys = np.flatnonzero(has)
                    shortfall = np.zeros(len(keys), dtype=np.float64)
                else:
                    inside = has[keys]
                    keys, shortfall = keys[inside], shortfall[inside]
            if not len(keys):
                break
        return keys, shortfall

    def _closest(self, word: str, as_typed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The distinct keys (ascending) holding ``word`` as typed (the keys ``as_typed``) or a word close to it,
        and each one's 100 - the best ratio of its words."""
        close = self._close_words(word)
        holders = [as_typed] + [self._word_keys[self._word_start[i]:self._word_start[i + 1]] for i, _ in close]
        keys = np.concatenate(holders)
        scores = np.repeat([100.0] + [score for _, score in close], [len(found) for found in holders])
        # each key's best score: the best of its run of scores, once sorted by key
        order = np.argsort(keys)
        keys, scores = keys[order], scores[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        starts = np.flatnonzero(first)
        return keys[starts], 100.0 - np.maximum.reduceat(scores, starts)

    def _close_words(self, word: str) -> list[tuple[int, float]]:
        """(id, ``fuzz.ratio``) of the title words whose ratio with ``word`` reaches the cutoff. A ratio r allows an
        Indel distance of (1 - r/100) * (both lengths), so only words whose length and characters can get there are
        scored: each character one of the two words has and the other lacks costs an insertion or deletion."""
        share = FUZZY_CUTOFF / (200.0 - FUZZY_CUTOFF)
        # the bounds as ints: searching for a float, numpy would first convert all 36,000 lengths to floats
        low = int(np.searchsorted(self._sorted_lengths, math.ceil(len(word) * share - 1e-9)))
        high = int(np.searchsorted(self._sorted_lengths, math.floor(len(word) / share + 1e-9), side="right"))
        if low == high:
            return []
        differing = np.bitwise_count(self._letter_masks[low:high] ^ np.uint64(_letter_mask(word)))
        # First against the distance the longest of these words allow, one int (compared as the counts' uint8), so
        # that the pass over the thousands of words of these lengths is a plain comparison; then the few left
        # against their own length's.
        most = int(_allowed_distance(len(word), int(self._sorted_lengths[high - 1])))
        near = np.flatnonzero(differing <= most)
        near = near[differing[near] <= _allowed_distance(len(word), self._sorted_lengths[low + near])]
        candidates = (low + near).tolist()
        found = process.extract(word, [self._words_by_length[i] for i in candidates], scorer=fuzz.ratio,
                                score_cutoff=FUZZY_CUTOFF, limit=None)
        return [(int(self._word_ids_by_length[candidates[position]]), score) for _, score, position in found]


class _Matches:
    """One query's matches: each anime's tier (``_NO_MATCH`` when none), the kind of that match, and its closeness
    within the tier (for word matches; smaller is closer). Marked from the worst tier to the best, so that the
    last mark of an anime is its best match."""

    def __init__(self, n_anime: int) -> None:
        self.tiers = np.full(n_anime, _NO_MATCH, dtype=np.int8)
        self.kinds = np.zeros(n_anime, dtype=np.int8)
        self.closeness = np.zeros(n_anime, dtype=np.int64)

    def mark(self, anime: np.ndarray | list[int], tier: int, kind: int) -> None:
        if len(anime) == 0:  # most marks of a query are empty, and numpy takes a microsecond even for those
            return
        self.tiers[anime] = tier
        self.kinds[anime] = kind
        self.closeness[anime] = 0

    def hide(self, hidden: np.ndarray | None) -> None:
        if hidden is not None:
            self.tiers[hidden] = _NO_MATCH


def _folded(text: str) -> str:
    """Compatibility forms, Latin accents, case and apostrophes folded away; punctuation still there."""
    text = unicodedata.normalize("NFKD", text.replace("\u00d7", " x "))
    text = unicodedata.normalize("NFKC", _ACCENTS.sub("", text)).casefold()
    return _APOSTROPHES.sub("", text)


def _folded_all(titles: list[str]) -> list[str]:
    """``_folded`` of every title, in one pass over them all (one title a line) rather than one call each."""
    if not titles:
        return []
    lines = _folded("\n".join(title.replace("\n", " ") for title in titles)).split("\n")
    return lines if len(lines) == len(titles) else [_folded(title.replace("\n", " ")) for title in titles]


def _keys(folded: list[str]) -> list[str]:
    """Search keys of folded titles: punctuation runs made spaces, in one pass over them all."""
    if not folded:
        return []
    return [" ".join(line.split()) for line in _NON_WORD.sub(" ", "\n".join(folded)).split("\n")]


def _acronyms(folded: str, compounds: dict[str, tuple[str, str]]) -> set[str]:
    if not folded.isascii():
        return set()
    head = _HEAD_END.split(folded, maxsplit=1)[0]
    acronyms = set()
    for part in dict.fromkeys((folded, head)):
        words = _ACRONYM_WORDS.findall(part.replace("-", " "))
        if len(words) < 2:
            continue
        initials = [word if word.isdigit() or word == "&" else word[0] for word in words]
        acronyms.add("".join(initials))
        if second := _second_syllable_initial(words[0]):
            acronyms.add(words[0][0] + second + "".join(initials[1:]))
        split = [initial if word not in compounds else compounds[word][0][0] + compounds[word][1][0]
                 for word, initial in zip(words, initials, strict=True)]
        acronyms.add("".join(split))
    low, high = ACRONYM_LENGTHS
    return {acronym for acronym in acronyms if low <= len(acronym) <= high}


def _second_syllable_initial(word: str) -> str:
    """The consonant after the first vowels of ``word`` ("jujutsu" -> "j", "kaisen" -> "s"); "" when there is
    none before its last letter, or the word is a number."""
    position = 1
    while position < len(word) and word[position] not in _VOWELS:
        position += 1
    while position < len(word) and word[position] in _VOWELS:
        position += 1
    return word[position] if position < len(word) - 1 and word[position].isalpha() else ""


def _as_acronym(text: str) -> str | None:
    """The query as an acronym to look up: one word of letters, digits and "&", dots dropped ("f.m.a.")."""
    folded = _folded(str(text)).strip()
    if not _ACRONYM_QUERY.fullmatch(folded):
        return None
    acronym = folded.replace(".", "")
    low, high = ACRONYM_LENGTHS
    return acronym if low <= len(acronym) <= high else None


def _allowed_distance(length: int, other_lengths: int | np.ndarray) -> float | np.ndarray:
    """The largest Indel distance at which a word of ``length`` characters and one of ``other_lengths`` still reach
    the cutoff ratio."""
    return np.floor((1.0 - FUZZY_CUTOFF / 100.0) * (length + other_lengths) + 1e-9)


def _letter_mask(word: str) -> int:
    """The characters of ``word`` as bits (code point mod 64): two words differing in k bits differ in at least
    k characters (shared bits can only hide differences)."""
    mask = 0
    for character in word:
        mask |= 1 << (ord(character) & 63)
    return mask
