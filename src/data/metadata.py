"""The anime metadata table: every anime of the metadata file, read from any supported format and repaired.

Formats, told apart by their columns:

- ``2020``: ``anime.csv`` (+ ``anime_with_synopsis.csv``) of the Kaggle "Anime Recommendation Database 2020".
  ``Unknown`` = missing; synopses and English names damaged by the scrape (repaired, below).
- ``2023``: ``anime-dataset-2023.csv`` of the Kaggle "Anime Dataset 2023". ``UNKNOWN`` = missing; synopsis and
  image URL in the same file; ``Other name`` is the native (Japanese) title: it fills ``japanese_name`` and, where
  it differs from the names, ``synonyms``. Genre names as the file has them ("Award Winning").
- ``2016``: ``anime.csv`` of the Kaggle "Anime Recommendations Database": names, genres, type, episodes, score
  (its ``rating`` column) and members only.

Repairs (2020 files only; the 2023 file has both intact), counted in ``AnimeMetadata.repairs``:

- Synopses: the scraper stripped the characters of ``"[Written by MAL Rewrite]"`` from both ends of each
  synopsis (``str.strip`` takes a set of characters, not a suffix), so a synopsis whose first letters are among
  ``W r i t e n b y M A L R w`` and space lost them: "When an Emishi" -> "hen an Emishi", "A young" -> "oung",
  "At the" -> "he". Every synopsis starting with a lower-case letter or a full stop is such a one. The lost
  characters are restored from the corpus's own vocabulary when the evidence supports one reading (see
  ``repair_synopses``); otherwise the synopsis is marked as cut: "…hen an Emishi". (The end of a synopsis lost
  the same characters, but there nothing tells.)
- English names lost the space after a colon ("Fullmetal Alchemist:Brotherhood"); it is put back unless the
  romaji name spells the same colon without a space too (real titles: "Code:Breaker", "Re:Zero").
- Placeholder synopses ("No synopsis information has been added to this title…", 745 in 2020) become missing:
  they say nothing, and all alike they would make the anime look like each other to the content features.
"""
from __future__ import annotations

import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from src.errors import UserError

# The anime table the app and the features read, one row per MyAnimeList id. List-valued: genres, synonyms,
# studios (lists of text, possibly empty); text columns are None when unknown.
METADATA_COLUMNS = [
    "anime_id", "name", "english_name", "genres", "type", "episodes", "premiered", "year", "score", "members",
    "synopsis", "japanese_name", "synonyms", "studios", "source", "age_rating", "image_url", "aired", "unaired",
]
# Column spellings of the 2016, 2020 and 2023 files -> our names. Case matters: the 2016 ``rating`` is the
# score, the 2020/2023 ``Rating`` the age rating.
ANIME_ALIASES = {
    "MAL_ID": "anime_id", "anime_id": "anime_id", "Name": "name", "name": "name",
    "English name": "english_name", "Japanese name": "japanese_name", "Other name": "other_name",
    "Genres": "genres", "Genders": "genres", "genre": "genres",
    "Type": "type", "type": "type", "Episodes": "episodes", "episodes": "episodes",
    "Premiered": "premiered", "Aired": "aired", "Score": "score", "rating": "score",
    "Members": "members", "members": "members", "Studios": "studios", "Source": "source",
    "Rating": "age_rating", "Image URL": "image_url", "Synopsis": "synopsis", "Status": "status",
}
SYNOPSIS_COLUMNS = ("sypnopsis", "synopsis", "Synopsis")  # "sypnopsis" (sic) in the 2020 files
# What ``read_metadata`` counts (all present, 0 where a repair does not apply to the format read).
REPAIR_COUNTS = ("synopses_repaired", "synopses_marked_truncated", "english_names_spaced",
                 "synopsis_placeholders_dropped")
MISSING_MARKERS = ["Unknown", "UNKNOWN", ""]
# MyAnimeList's "no synopsis yet" texts (2020 and 2023 wording): no information, and all alike, so as good as missing.
SYNOPSIS_PLACEHOLDER = re.compile(r"^\s*(No synopsis (information )?has been added|No description available)", re.I)

# What the 2020 scraper stripped from both ends of every synopsis, as a set of characters.
STRIPPED_CHARACTERS = frozenset("[Written by MAL Rewrite]")
_STRIPPED_UPPER = frozenset(c for c in STRIPPED_CHARACTERS if c.isupper())
_STRIPPED_LOWER = frozenset(c for c in STRIPPED_CHARACTERS if c.islower())
TRUNCATION_MARK = "…"
_WORD = re.compile(r"[A-Za-z]+")
_LEADING_WORD = re.compile(r"[A-Za-z]*")
_NEXT_WORD = re.compile(r"\s+([A-Za-z]+)")
_START_WITH_DAY = re.compile(r"^[A-Za-z]{3}\s+\d{1,2},\s*\d{4}$")  # "Apr 3, 1998", not "Jul, 2021" or "2021"


@dataclass
class AnimeMetadata:
    """The anime table (columns ``METADATA_COLUMNS``), the repairs made on it and the file format read."""

    table: pd.DataFrame
    repairs: dict[str, int] = field(default_factory=dict)
    source_format: str = "2020"


# ---------------------------------------------------------------------------------------------- reading
def detect_format(columns: Iterable[str]) -> str:
    """``2023``, ``2020`` or ``2016`` from a metadata file's column names."""
    columns = set(columns)
    if {"Image URL", "Other name"} & columns or ("anime_id" in columns and "Synopsis" in columns):
        return "2023"
    if "MAL_ID" in columns:
        return "2020"
    return "2016"


def read_metadata(anime_path: Path, synopsis_path: Path | None = None) -> AnimeMetadata:
    """Read a metadata file (plain, .gz or .zip; 2016, 2020 or 2023 format) and, for the 2020 format, its
    synopsis file; repair what the 2020 scrape damaged and count the repairs."""
    raw = _read_small_csv(anime_path, set(ANIME_ALIASES))
    source_format = detect_format(raw.columns)
    raw = raw.rename(columns={c: ANIME_ALIASES[c] for c in raw.columns if c in ANIME_ALIASES})
    for required in ("anime_id", "name"):
        if required not in raw.columns:
            raise UserError(f"{anime_path.name} lacks the {required} column (MAL_ID/anime_id, Name/name); "
                            f"found {', '.join(_header(anime_path))}")
    ids = pd.to_numeric(raw["anime_id"], errors="coerce")
    raw = raw[ids.notna() & raw["name"].notna()].copy()
    raw["anime_id"] = ids[raw.index].astype(np.int64)
    raw = raw.drop_duplicates("anime_id").reset_index(drop=True)

    def column(name: str) -> pd.Series:
        return raw[name] if name in raw.columns else pd.Series([None] * len(raw), index=raw.index, dtype=object)

    anime = pd.DataFrame({"anime_id": raw["anime_id"], "name": raw["name"].astype(object)})
    english = column("english_name")
    anime["english_name"] = english.where(english.notna(), anime["name"]).astype(object)
    anime["genres"] = _split_list(column("genres"))
    anime["type"] = _text(column("type"))
    anime["episodes"] = pd.to_numeric(column("episodes"), errors="coerce").round().astype("Int32")
    anime["premiered"] = _text(column("premiered").str.capitalize() if "premiered" in raw else column("premiered"))
    year_text = column("premiered").fillna(column("aired")).astype(object)
    years = pd.to_numeric(pd.Series(year_text, dtype="string").str.extract(r"(\d{4})", expand=False), errors="coerce")
    anime["year"] = years.astype("Int32")
    anime["score"] = pd.to_numeric(column("score"), errors="coerce").astype(np.float32)
    anime["members"] = pd.to_numeric(column("members"), errors="coerce").fillna(0).astype(np.int64)
    if "synopsis" in raw.columns:
        synopsis = column("synopsis")
    elif synopsis_path is not None:
        synopsis = _read_synopses(synopsis_path).reindex(anime["anime_id"]).set_axis(anime.index)
    else:
        synopsis = pd.Series([None] * len(anime), index=anime.index, dtype=object)
    anime["synopsis"] = _text(synopsis)
    other = column("other_name")
    anime["japanese_name"] = _text(column("japanese_name") if "japanese_name" in raw.columns else other)
    anime["synonyms"] = [_synonyms(value, name, english_name) for value, name, english_name
                         in zip(other, anime["name"], anime["english_name"], strict=True)]
    anime["studios"] = _split_list(column("studios"))
    anime["source"] = _text(column("source"))
    anime["age_rating"] = _text(column("age_rating"))
    anime["image_url"] = _text(column("image_url"))
    anime["aired"] = _text(column("aired"))
    anime["unaired"] = not_yet_aired(anime["aired"], column("status"), anime["score"], source_format)

    repairs = dict.fromkeys(REPAIR_COUNTS, 0)
    placeholder = np.array([isinstance(text, str) and bool(SYNOPSIS_PLACEHOLDER.match(text))
                            for text in anime["synopsis"]], dtype=bool)
    repairs["synopsis_placeholders_dropped"] = int(placeholder.sum())
    anime.loc[placeholder, "synopsis"] = None
    if source_format == "2020":
        english, repairs["english_names_spaced"] = space_english_names(list(anime["english_name"]),
                                                                       list(anime["name"]))
        anime["english_name"] = pd.Series(english, index=anime.index, dtype=object)
        names = [[name, english_name] for name, english_name in zip(anime["name"], english, strict=True)]
        synopses, counts = repair_synopses(list(anime["synopsis"]), names)
        anime["synopsis"] = pd.Series(synopses, index=anime.index, dtype=object)
        repairs.update(counts)
    return AnimeMetadata(anime[METADATA_COLUMNS], repairs, source_format)


def not_yet_aired(aired: pd.Series, status: pd.Series, score: pd.Series, source_format: str) -> np.ndarray:
    """Which anime had not started airing when the metadata was scraped (they can be found, not recommended).

    2023 file: its ``Status`` says "Not yet aired". 2020 files: ``Aired`` is unknown, or starts after the metadata's
    own date, which the file does not state: the latest start among scored anime (MyAnimeList takes scores only once
    a show airs), 2021-03-14 for the March 2021 revision. A start given by month or year only ("Jul, 2021 to ?",
    "2021 to ?") counts from its first day, except that an unscored one in the metadata's own year or later is
    unaired too: MyAnimeList gives the day once a show airs (no scored title of 2020 or later lacks it, 139 unscored
    ones of 2021 do, "Kimetsu no Yaiba: Yuukaku-hen" among them). The 2016 file says nothing about airing: none is.
    """
    if source_format == "2023":
        return np.array([isinstance(text, str) and text.strip().casefold() == "not yet aired" for text in status])
    if source_format != "2020":
        return np.zeros(len(aired), dtype=bool)
    start_text = aired.str.split(" to ").str[0]
    starts = pd.to_datetime(start_text, errors="coerce", format="mixed")
    scored = score.notna().to_numpy()
    scraped = starts[scored].max()
    if pd.isna(scraped):  # nothing scored: nothing tells the date
        return aired.isna().to_numpy()
    without_day = ~start_text.str.contains(_START_WITH_DAY, na=False).to_numpy()
    recent_and_vague = without_day & (starts.dt.year >= scraped.year).to_numpy() & ~scored
    return (starts.isna() | (starts > scraped)).to_numpy() | recent_and_vague


def _text(values: pd.Series) -> pd.Series:
    """Text with missing values as None (not NaN), stripped of surrounding blanks."""
    return pd.Series([v.strip() or None if isinstance(v, str) else None for v in values], index=values.index,
                     dtype=object)


def _split_list(values: pd.Series) -> list[list[str]]:
    return [[part.strip() for part in value.split(",") if part.strip() and part.strip() not in MISSING_MARKERS]
            if isinstance(value, str) else [] for value in values]


def _synonyms(other: object, name: str, english_name: str) -> list[str]:
    """The 2023 file's ``Other name`` (the native title, occasionally several titles separated by commas) as a
    list, without entries that only repeat the name or the English name."""
    if not isinstance(other, str):
        return []
    known = {name.casefold(), english_name.casefold()}
    return [part for part in (p.strip() for p in other.split(", ")) if part and part.casefold() not in known]


def _header(path: Path) -> list[str]:
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError):
        return []


def _read_small_csv(path: Path, columns: set[str]) -> pd.DataFrame:
    """The named ``columns`` (those present) as strings; skipping the other columns halves the parsing."""
    try:
        return pd.read_csv(path, dtype=str, na_values=MISSING_MARKERS, keep_default_na=True,
                           usecols=lambda name: name in columns)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path.name}: {error}") from error


def _read_synopses(path: Path) -> pd.Series:
    raw = _read_small_csv(path, {*SYNOPSIS_COLUMNS, "MAL_ID", "anime_id"})
    column = next((c for c in SYNOPSIS_COLUMNS if c in raw.columns), None)
    id_column = next((c for c in ("MAL_ID", "anime_id") if c in raw.columns), None)
    if column is None or id_column is None:
        raise UserError(f"{path.name} lacks MAL_ID or sypnopsis/synopsis columns; found {', '.join(_header(path))}")
    ids = pd.to_numeric(raw[id_column], errors="coerce")
    synopses = pd.Series(raw[column].to_numpy(), index=ids).loc[lambda s: s.index.notna()]
    synopses.index = synopses.index.astype(np.int64)
    synopses = synopses[~synopses.index.duplicated()]
    return synopses.astype(object).where(synopses.notna(), None)


# -------------------------------------------------------------------------------------- English names
def space_english_names(english: Sequence[str | None], romaji: Sequence[str | None]) -> tuple[list[str | None], int]:
    """Put back the space after each colon in English names ("Fullmetal Alchemist:Brotherhood"), except where the
    colon belongs to the title: the romaji name has the same word before a colon with no space after it either
    ("Code:Breaker"; "Re:ZERO -Starting Life…" beside "Re:Zero kara…"; "Tokyo Ghoul:re"), or the colon sits
    between digits ("00:08"). (The Japanese names are no guide: they rarely space colons.) Returns the names and
    how many changed."""
    fixed, changed = [], 0
    for name, roman in zip(english, romaji, strict=True):
        if not isinstance(name, str) or ":" not in name:
            fixed.append(name)
            continue
        reference = roman.casefold() if isinstance(roman, str) else ""
        new = _COLON.sub(lambda match, reference=reference: _colon(match, reference), name)
        changed += new != name
        fixed.append(new)
    return fixed, changed


_COLON = re.compile(r"([^\s:]*):(?=\S)")


def _colon(match: re.Match[str], reference: str) -> str:
    """One colon of an English name with the space after it put back, unless it belongs to the title."""
    before = match.group(1)
    after = re.match(r"[^\s:]*", match.string[match.end():]).group(0)
    if before[-1:].isdigit() and after[:1].isdigit():  # a time or a ratio: "00:08"
        return match.group(0)
    word = re.search(r"\w*$", before).group(0).casefold()  # "outsider" of "-OutsideR:RequieM-"
    if word and any(re.findall(r"(?<!\w)" + re.escape(word) + r":(\S?)", reference)):
        return match.group(0)
    return f"{before}: "


# ------------------------------------------------------------------------------------------- synopses
def is_truncated(text: str | None) -> bool:
    """A 2020 synopsis that lost its first characters: it starts with a lower-case letter or a full stop."""
    return bool(text) and (text[0].islower() or text[0] == ".")


@dataclass(frozen=True)
class _Reading:
    """One way to restore a cut synopsis: the words whose start was cut (1 or 2) and the characters to put back."""

    words: tuple[str, ...]
    restored: str
    attached: str  # the restored letters joined to the fragment ("Mi" of "Mi|kan", "" of "A |music")

    @property
    def fragment_word(self) -> str:
        """The word the fragment is the end of."""
        return self.words[-1]


def _factorize(words: list[str]) -> tuple[np.ndarray, list[str]]:
    """(codes, distinct words): ``words[i] == distinct[codes[i]]``; arrow's dictionary encoding, fast on 1 M words."""
    encoded = pa.array(words, type=pa.string()).dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


class SynopsisCorpus:
    """Word statistics of the synopses and names, the evidence for ``repair_synopses``: how often words, pairs and
    triples of words occur (lower case), how often they start a sentence, and how words are usually spelled.

    The first word of each synopsis in ``cut`` is a fragment, so it is left out. N-grams are counted with numpy
    over word ids, which keeps the whole build well under a second for the 16k synopses of 2020.
    """

    def __init__(self, synopses: Sequence[str | None], names: Sequence[Sequence[str | None]], cut: set[int]) -> None:
        lower: list[str] = []
        spelled: list[str] = []
        lengths: list[int] = []
        self.starts: Counter = Counter()  # the first one, two and three words of sentences
        for i, text in enumerate(synopses):
            if not isinstance(text, str):
                continue
            skip = 1 if i in cut else 0
            words = _WORD.findall(text)[skip:]
            spelled.extend(words)
            lower.extend(" ".join(words).lower().split())
            lengths.append(len(words))
            for number, sentence in enumerate(_SENTENCE_BREAK.split(text)):
                # only a reading's words are looked up, and they start with a stripped capital
                if (number or not skip) and sentence[:1] in _STRIPPED_UPPER:
                    first = _WORD.findall(sentence[:80].lower())[:3]
                    self.starts.update(tuple(first[:n]) for n in range(1, len(first) + 1))
        title_words = [w for anime_names in names for name in anime_names for w in _WORD.findall(name or "")]
        codes, vocabulary = _factorize(lower + [w.lower() for w in title_words])
        self.words: list[str] = vocabulary
        self.ids = {word: i for i, word in enumerate(self.words)}
        size = len(self.words)
        self._size = np.int64(max(size, 1))
        self.unigrams = np.bincount(codes, minlength=size)
        # the synopses' words with -1 between synopses, so no pair or triple spans two of them
        tokens = np.insert(codes[: len(lower)].astype(np.int64), np.cumsum(lengths, dtype=np.int64), -1)
        self._tables = {n: self._count(tokens, n) for n in (2, 3)}
        self._cache: dict[tuple[str, ...], int] = {}
        self.surface = SynopsisCorpus._spellings(spelled, title_words)
        self._suffix_index: defaultdict[str, list[str]] | None = None
        # word -> the words made only of stripped characters seen just before it ("a", "an", "at" before "young")
        self.followers: defaultdict[str, list[str]] = defaultdict(list)
        keys = self._tables[2][0]
        firsts, seconds = keys // self._size, keys % self._size
        strippable = np.array([bool(_CAPITALISED_PREFIX.fullmatch(w)) for w in self.words] + [False])
        chosen = strippable[firsts]
        for first, second in zip(firsts[chosen].tolist(), seconds[chosen].tolist(), strict=True):
            self.followers[self.words[second]].append(self.words[first])

    def _count(self, tokens: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Sorted keys and counts of the n-grams of ``tokens`` that do not cross a synopsis boundary."""
        parts = [tokens[k: len(tokens) - n + 1 + k] for k in range(n)]
        valid = np.logical_and.reduce([part >= 0 for part in parts])
        keys = np.zeros(int(valid.sum()), dtype=np.int64)
        for part in parts:
            keys = keys * self._size + part[valid]
        return np.unique(keys, return_counts=True)

    @staticmethod
    def _spellings(spelled: list[str], title_words: list[str]) -> dict[str, str]:
        """Lower-case word -> its most common spelling in the synopses, else in the names: titles capitalise every
        word ("Master of Torque: Epilogue"), synopses only proper nouns."""
        codes, spellings = _factorize(spelled)
        counts = np.bincount(codes, minlength=len(spellings)).tolist()
        surface: dict[str, str] = {}
        best: dict[str, int] = {}
        for word, count in zip(spellings, counts, strict=True):
            low = word.lower()
            if count > best.get(low, -1):
                best[low], surface[low] = count, word
        for word, _ in Counter(title_words).most_common():
            surface.setdefault(word.lower(), word)
        return surface

    def count(self, words: tuple[str, ...]) -> int:
        """Occurrences of the one, two or three ``words`` in a row (lower case) in the synopses (and names, for one)."""
        if words in self._cache:
            return self._cache[words]
        ids = [self.ids.get(w) for w in words]
        if None in ids:
            found = 0
        elif len(ids) == 1:
            found = int(self.unigrams[ids[0]])
        else:
            key = 0
            for i in ids:
                key = key * int(self._size) + i
            keys, counts = self._tables[len(ids)]
            position = int(np.searchsorted(keys, key))
            found = int(counts[position]) if position < len(keys) and keys[position] == key else 0
        self._cache[words] = found
        return found

    def __contains__(self, word: str) -> bool:
        return word in self.ids

    def ending_with(self, fragment: str) -> list[str]:
        """The words ``fragment`` may be the end of once their start was cut: the cut part is made of stripped
        characters, capitalised ("Mi" of "Mikan") or lower case ("y" of "young", after a first word "A")."""
        if self._suffix_index is None:
            self._suffix_index = defaultdict(list)
            for word in self.words:
                capitalised = _CAPITALISED_PREFIX.match(word)
                longest = max(len(capitalised.group(0)) if capitalised else 0, len(_LOWER_PREFIX.match(word).group(0)))
                for k in range(1, min(longest, len(word) - 1) + 1):
                    self._suffix_index[word[k:]].append(word)
        return self._suffix_index.get(fragment, [])


def repair_synopses(synopses: Sequence[str | None], names: Sequence[Sequence[str | None]] | None = None,
                    min_ratio: float = 5.0, frequency_ratio: float = 25.0) -> tuple[list[str | None], dict[str, int]]:
    """Restore the first characters the 2020 scrape cut from synopses, where the corpus supports one reading.

    The cut characters are all from ``STRIPPED_CHARACTERS``, so the readings of "oung Taiwanese" are the corpus
    words ending in "oung" whose cut start is made of those characters, optionally after one word made only of
    them: "A young" (not "Young": ``Y`` is not among them), "At young", "Wit young". Readings never seen in the
    corpus (the word, or the two words in a row) are dropped; of the rest, in order:

    1. the only one left;
    2. the only one whose restored word (letters put back onto the fragment) occurs elsewhere in the same
       synopsis or in the anime's names ("kan Sakura is … Mikan's" -> "Mikan");
    3. the one most often followed by the synopsis's next word in the corpus, if at least twice and ``min_ratio``
       times as often as the next best ("ong ago" -> "Long ago", not "Wrong ago");
    4. the one most often starting a sentence in the corpus, likewise;
    5. the most frequent anywhere, if ``frequency_ratio`` times as frequent as the next best.

    The first of 3-5 with any evidence decides, either way: a weaker kind never overrules a tie ("ll Shuichi":
    "Will" and "All" both start sentences often, so it stays cut).

    Otherwise, or with no reading at all, the text is marked as cut: "…" + text. ``names`` holds, per synopsis,
    the anime's names (extra vocabulary and evidence for rule 2). Returns the texts and the counts
    ``synopses_repaired`` and ``synopses_marked_truncated``.
    """
    names = names if names is not None else [[] for _ in synopses]
    cut = [i for i, text in enumerate(synopses) if isinstance(text, str) and is_truncated(text)]
    counts = {"synopses_repaired": 0, "synopses_marked_truncated": 0}
    if not cut:
        return list(synopses), counts
    corpus = SynopsisCorpus(synopses, names, set(cut))
    readings = {i: synopsis_readings(synopses[i], corpus) for i in cut}
    repaired = list(synopses)
    for i in cut:
        text = synopses[i]
        chosen = choose_reading(readings[i], _next_word(text), _local_words(text, names[i]), corpus, min_ratio,
                                frequency_ratio)
        if chosen is None:
            repaired[i] = TRUNCATION_MARK + text
            counts["synopses_marked_truncated"] += 1
        else:
            repaired[i] = chosen.restored + text
            counts["synopses_repaired"] += 1
    return repaired, counts


def _tokens(text: str | None) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)] if isinstance(text, str) else []


_UPPER_CLASS = "".join(sorted(c.lower() for c in _STRIPPED_UPPER))
_LOWER_CLASS = "".join(sorted(_STRIPPED_LOWER))
# On lower-case words: the part that could have been cut at a sentence start ("mi" of "mikan"; "a" of "after")
# and the part that could have been cut after a first word ("y" of "young" in "A young").
_CAPITALISED_PREFIX = re.compile(f"[{_UPPER_CLASS}][{_LOWER_CLASS}]*")
_LOWER_PREFIX = re.compile(f"[{_LOWER_CLASS}]*")


_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")


def synopsis_readings(text: str, corpus: SynopsisCorpus) -> list[_Reading]:
    """Every way to put back what was cut from ``text`` that the corpus knows the words of."""
    fragment = _LEADING_WORD.match(text).group(0)
    if not fragment:
        return []  # ". Money is …" ("Mr." or "Dr."?): no fragment to match against
    low = fragment.lower()
    readings = []
    endings = corpus.ending_with(low)
    for word in endings:  # one word: "When" for "hen"
        spelled = corpus.surface.get(word, word)
        cut_part = spelled[: len(spelled) - len(low)]
        if _CAPITALISED_PREFIX.fullmatch(cut_part.lower()):
            readings.append(_Reading((word,), cut_part[0].upper() + cut_part[1:], cut_part))
    for word in {*endings, *([low] if low in corpus else [])}:  # two words: "A young" for "oung"
        spelled = corpus.surface.get(word, word)
        cut_part = spelled[: len(spelled) - len(low)]
        if not (_LOWER_PREFIX.fullmatch(cut_part)
                or cut_part[:1].isupper() and _CAPITALISED_PREFIX.fullmatch(cut_part.lower())):
            continue
        for first in corpus.followers.get(word, ()):
            spelled_first = corpus.surface.get(first, first)
            restored = spelled_first[0].upper() + spelled_first[1:] + " " + cut_part
            readings.append(_Reading((first, word), restored, cut_part))
    return readings


def _next_word(text: str) -> str | None:
    fragment = _LEADING_WORD.match(text).group(0)
    match = _NEXT_WORD.match(text, len(fragment))
    return match.group(1).lower() if match else None


def _local_words(text: str, anime_names: Sequence[str | None]) -> set[str]:
    words = set(_tokens(text)[1:])
    for name in anime_names:
        words.update(_tokens(name))
    return words


def _frequency(reading: _Reading, corpus: SynopsisCorpus) -> int:
    return corpus.count(reading.words)


def _context(reading: _Reading, following: str | None, corpus: SynopsisCorpus) -> int:
    return corpus.count((*reading.words, following)) if following is not None else 0


def _start(reading: _Reading, following: str | None, corpus: SynopsisCorpus) -> int:
    """How often the reading and the next word start a sentence in the corpus."""
    return corpus.starts.get((*reading.words, following), 0) if following is not None else 0


def choose_reading(readings: list[_Reading], following: str | None, local: set[str], corpus: SynopsisCorpus,
                   min_ratio: float = 5.0, frequency_ratio: float = 25.0) -> _Reading | None:
    """The reading the evidence supports (rules in ``repair_synopses``), or None when it is ambiguous."""
    readings = [r for r in readings if _frequency(r, corpus) > 0]
    if len(readings) <= 1:
        return readings[0] if readings else None
    in_text = [r for r in readings if r.attached and r.fragment_word in local]
    if len(in_text) == 1:
        return in_text[0]
    evidence = [  # (score, how many times the next best it must be, the least score that counts as evidence)
        (lambda r: _start(r, following, corpus), min_ratio, 2),
        (lambda r: _context(r, following, corpus), min_ratio, 2),
        (lambda r: corpus.starts.get(r.words, 0), min_ratio, 2),
        (lambda r: _frequency(r, corpus), frequency_ratio, 1),
    ]
    for score, ratio, minimum in evidence:
        ranked = sorted(readings, key=score, reverse=True)
        best, second = score(ranked[0]), score(ranked[1])
        if best >= minimum:  # evidence at this level decides, either way: a weaker kind never overrules a tie
            return ranked[0] if best >= ratio * second else None
    return None
