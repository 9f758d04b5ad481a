"""Franchises: which anime are one story's seasons, movies, OVAs, specials and recaps, in what order they came out,
which entry a newcomer should start with, and which anime are never worth recommending (recaps, music videos).

MyAnimeList's metadata has no relation field, so franchises are derived from titles, studios, Japanese names,
synopses and (optionally) the content features. Precision comes first: merging two different shows hides one behind
the other, while a missed relation only costs some diversity in a list.

Title keys (``title_key``). Every romaji name, synonym and English name gives a key: the title before its first
subtitle separator (": ", " - ", "~", "(", "[", and "/" in "Fate/Zero"), folded to lower-case ASCII words, with
leading release words ("Gekijouban", "Eiga", "Zoku") and trailing release markers stripped: kinds ("TV", "OVA",
"Movie", "Specials", "Recap", "Picture Drama", "Series"), counters ("2", "II", "2nd", "S2") and season phrases
("Season 2", "2nd Season", "Part 2", "Final Season"). "Shingeki no Kyojin Season 3 Part 2", "Shingeki no Kyojin:
The Final Season" and "Shingeki no Kyojin Movie 1: Guren no Yumiya" all give "shingeki no kyojin"; "Major 2nd"
gives "major"; "Hunter x Hunter (2011)" gives "hunter x hunter"; a "/" title also keeps its whole main part
("fate stay night" besides "fate"). A key is *strong* with two words or more and ``STRONG_KEY_LETTERS`` letters or
more, else *weak* ("air", "gintama", "fate"). English names give strong keys only: their single words are
dictionary words ("Flower", "Princess") naming unrelated shows. A key of fewer than 3 letters or only particles
("the", "no") is dropped.

Evidence that two anime with related keys are one franchise: a shared studio; the same ``japanese_key`` (the
opening of the Japanese name: "ソードアート・オンライン" for both "Sword Art Online" and its "Alternative: Gun Gale
Online"); the content cosine (content features given).

Links, each between two anime, then closed transitively (union-find):

1. Same strong key: always ("Code Geass: Hangyaku no Lelouch" and "Code Geass: Boukoku no Akito 1").
2. Same weak key: with a shared studio or Japanese keys one opening the other ("メジャー" of "Major S1",
   "メジャーセカンド" of "Major 2nd (TV)"), else a content cosine >= ``WEAK_KEY_MIN_COSINE`` ("Air" and "Air Movie"
   are by different studios; "I''s" and "IS: Infinite Stratos" stay apart).
3. Word prefix, one key is the other plus words ("sword art online" < "sword art online alternative"):
   strong key: with a shared studio or the same Japanese key, else a cosine >= ``PREFIX_MIN_COSINE``
   (``PREFIX_DISJOINT_MIN_COSINE`` when both have studios, none in common: "High Score" and "High Score Girl"
   stay apart); weak key: a shared studio *and* a cosine >= ``WEAK_PREFIX_MIN_COSINE``, as big studios made many
   shows ("Air in Summer" joins "Air"; "Air Gear" and "Air Master", Toei like "Air Movie", do not).
4. Named in a subtitle: a key opens another anime's subtitle ("Boruto: Naruto Next Generations" opens with
   "naruto"), with a shared studio and a cosine >= ``SUBTITLE_MIN_COSINE`` (the studio alone without content).
5. Named in a synopsis: a synopsis names another anime's strong romaji key as a proper name (capitalised), their
   names open with the same word, and all it names this way is one franchise (a crossover names two and would
   join them): "Kimetsu Gakuen: Valentine-hen", "Valentine's Day special for Kimetsu no Yaiba".
6. "-monogatari" compounds: a one-word romaji key ending in "monogatari" also has the weak key "monogatari", so
   Bakemonogatari, Nisemonogatari, Owarimonogatari and "Monogatari Series: Second Season" meet under rule 2.

Music videos (type "Music") take part in rule 1 only: a song named like two shows must not join them. Without
content features the cosine conditions never hold (rule 4 then takes the shared studio alone): fewer links, and
every "must differ" pair of tests/test_franchises.py still differs.

Entry order (``entry_order``): release order within a franchise by start date (``aired`` when the table has it,
else ``premiered``'s season, else ``year``; unknown dates last), ties by anime_id. The first entry of a franchise is
what a newcomer should be offered instead of a later season: its most watched recommendable TV series, film, OVA or
ONA (the earliest among equals; without one, its most watched recommendable entry). Viewers drop off season by
season, so that is the first season ("Shingeki no Kyojin", not "Season 3"), or the remake most people start with
("Fullmetal Alchemist: Brotherhood" rather than the 2003 series, "Hunter x Hunter (2011)" rather than the 1999 one),
or the original a franchise is known by ("FLCL", the 2000 OVA, not "FLCL Progressive"; "Ghost in the Shell", 1995).
The earliest TV series, the rule first tried, sent Brotherhood's would-be viewers to the 2003 series: on the embedded
sample's known users at 50 ratings, 27 held-out hits lost.

Unrecommendable (``is_unrecommendable``): music videos (type "Music") and recaps: a title word "Recap(s)",
"Soushuuhen" or "Digest", "総集編" in the Japanese name, or, for anything but a TV series, a synopsis saying the
anime is a recap, summary or compilation ("Recap of episodes 1-13.", "Compilation movie of the first season"),
unless it says the recap is only part of it ("The first 25 minutes is a recap of season 1.").
"""
from __future__ import annotations

import bisect
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

STRONG_KEY_LETTERS = 8
WEAK_KEY_MIN_COSINE = 0.6
PREFIX_MIN_COSINE = 0.55
WEAK_PREFIX_MIN_COSINE = 0.55
PREFIX_DISJOINT_MIN_COSINE = 0.65
SUBTITLE_MIN_COSINE = 0.4
_ENTRY_KINDS = frozenset({"TV", "Movie", "OVA", "ONA"})  # where a franchise is entered: not a special or a music video
# Anime sharing a weak key (or a prefix) are compared pairwise among their first 64 rows only ("pokemon" is the key
# of hundreds): bounds the build's time; the others still join through their strong keys or through them.
_MAX_PAIRWISE = 64
# Names opening with a word more anime have than this ("shin", "mahou") are not searched for in synopses (rule 5).
_MAX_FIRST_WORD_GROUP = 256
_MISSING_TEXTS = frozenset({"", "unknown", "nan", "none"})
UNKNOWN_START = 99_999_999  # the start date of an anime without one: after every known date

_APOSTROPHES = re.compile(r"['`’]")
# Where a title's subtitle starts; "Re:Zero" and "Steins;Gate" have no space after the mark, so they stay whole.
_SUBTITLE_START = re.compile(r"\s*(?::(?:\s|$)|\s[-–—~]|[~〜～]|\s?[(\[【「『])")
_SLASH = re.compile(r"(?<=[A-Za-z])/+(?=[A-Za-z0-9])")
_WORD = re.compile(r"[a-z0-9]+")
_CASED_WORD = re.compile(r"[A-Za-z0-9]+")
_COMBINING = re.compile(r"[\u0300-\u036f]")
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")
_KIND_WORDS = frozenset("tv ova oav oad ona movie movies film specials special recap recaps soushuuhen omake pilot "
                        "pv cm the picture drama dramas series".split())
_SEASON_WORDS = frozenset("season seasons part cour stage chapter episode vol volume kikan".split())
_ORDINAL_WORDS = frozenset("first second third fourth fifth sixth seventh eighth ninth tenth final last".split())
# A counter standing alone at the end: "Steins;Gate 0", "Major 2nd", "Overlord III", "Major S2". Not "x" or "v"
# ("Sonic X", "Samurai X" are the shows' names) and not numbers of 3 digits or more ("Tokyo 2164", "Mob Psycho 100").
_COUNTER = re.compile(r"\d{1,2}|\d+(?:st|nd|rd|th)|i{1,3}|iv|vi{1,3}|ix|s\d{1,2}")
_COUNTER_WORD = re.compile(r"\d+|\d+(?:st|nd|rd|th)|[ivx]+|one|two|three|four|five|six")
_JAPANESE_LEADING = re.compile(r"^[\s「『【\[(（]*(?:劇場版|映画)?[\s「『【\[(（]*")
_KANJI = re.compile(r"[\u4e00-\u9fff]")
_JAPANESE_CUT = re.compile(r"[\s～〜~:：「」『』()（）【】\[\]/-]")
_LEADING_WORDS = frozenset("gekijouban eiga zoku".split())
_PARTICLES = frozenset("no wa ga wo ni de to na ka mo e o the a an of and in on".split())
_COMPOUND_SUFFIX = "monogatari"

_AIRED = re.compile(r"\s*(?:([A-Za-z]{3})[a-z]*\.?\s*(?:(\d{1,2})\s*)?,\s*)?(\d{4})")  # "Apr 4, 2013 to ..."
_PREMIERED = re.compile(r"\s*(winter|spring|summer|fall)\s+(\d{4})", re.IGNORECASE)
_MONTHS = {name: month for month, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_SEASON_MONTHS = {"winter": 1, "spring": 4, "summer": 7, "fall": 10}

_RECAP_TITLE = re.compile(r"\b(?:recaps?|soushuuhen)\b|(?<!'s )\bdigest\b", re.IGNORECASE)
_RECAP_TITLE_WORDS = ("recap", "soushuuhen", "digest")  # a cheap look before the pattern
_RECAP_JAPANESE = "総集編"
# A synopsis that says what the anime is: a recap / summary / compilation of what came before. The 2020 scrape cut
# a synopsis's leading "Re" (src/data/metadata.py), hence "…cap of episodes 1-13".
_RECAP_SYNOPSIS = re.compile(r"""
    ^\W*(?:…\s*)?(?:re)?cap\b
  | \b(?:recap|summary|recapitulation)\s+(?:episode|episodes|film|films|movie|movies|special|specials|ova)\b
  | \bcompilation\s+(?:film|films|movie|movies)\b
  | \b(?:is|was|are|were)\s+(?:just\s+|basically\s+|essentially\s+|mainly\s+|in\s+fact\s+)?(?:a|an|the)\s+
      (?:[\w-]+\s+){0,2}(?:recap|summary)\b
  | \b(?:recap(?:s|ped|ping)?|summar(?:y|ises|izes|ising|izing)|compilation|compiling|recapitulation)\s+(?:of\s+)?
      (?:the\s+|all\s+)?(?:(?:major\s+|main\s+)?events\s+(?:of|from|in)\s+(?:the\s+)?)?(?:[\w'!.-]+\s+){0,3}?
      (?:first|last|entire|whole|previous|original|episodes?|season|tv\s+series|series)\b
""", re.IGNORECASE | re.VERBOSE)
# ... unless the sentence says the recap is only part of it: "The first 25 minutes is a recap of season 1."
_PARTIAL_RECAP = re.compile(r"\b(?:first|opening)\s+(?:\d+\s*-?\s*minutes?|half|part|portion|episode)\s*,?\s*"
                            r"(?:of\s+the\s+(?:episode|movie|film|ova|special)|is|was|are|were|titled)\b"
                            r"|\bremaining\b|\binclud(?:es|ing|ed)\s+(?:a|an|one)\s+recap", re.IGNORECASE)


@dataclass(frozen=True)
class Franchises:
    """Row j of every array is anime row j of the catalogue."""

    ids: np.ndarray  # int32 franchise id, 0..n_franchises-1 numbered by first row; an anime alone has its own
    order: np.ndarray  # int32 position in the franchise's release order, 0 = earliest
    first_entry: np.ndarray  # int32 row of the franchise's first entry (see the module docstring), per row
    unrecommendable: np.ndarray  # bool: a recap or a music video, never recommended

    @property
    def count(self) -> int:
        return int(self.ids.max()) + 1 if len(self.ids) else 0

    def members_of(self, row: int) -> np.ndarray:
        """Rows of ``row``'s franchise in release order."""
        rows = np.flatnonzero(self.ids == self.ids[row])
        return rows[np.argsort(self.order[rows], kind="stable")]


def build_franchises(anime: pd.DataFrame, content: np.ndarray | None = None) -> Franchises:
    """The franchises of a catalogue table (row j = anime j): columns anime_id, name, english_name, japanese_name,
    synonyms, type, studios, members, premiered, year, and if it has them synopsis (recaps, rule 5) and aired (start
    dates to the day). ``content``: the L2-normalised content features, row j = anime j, or None."""
    names, english_names, japanese_names = (_column(anime, name) for name in ("name", "english_name",
                                                                             "japanese_name"))
    types = [_text(value) for value in _column(anime, "type")]
    synopses = _column(anime, "synopsis", optional=True)
    unrecommendable = is_unrecommendable(names, english_names, japanese_names, types, synopses)
    ids = franchise_ids(names, english_names, _column(anime, "synonyms"), _column(anime, "studios"), types,
                        japanese_names=japanese_names, synopses=synopses, content=content)
    starts = start_dates(_column(anime, "aired", optional=True), _column(anime, "premiered"), _column(anime, "year"))
    members = pd.to_numeric(anime["members"], errors="coerce").fillna(0).to_numpy(float)
    anime_ids = pd.to_numeric(anime["anime_id"], errors="coerce").fillna(-1).to_numpy(np.int64)
    order, first_entry = entry_order(ids, types, starts, anime_ids, members, unrecommendable)
    return Franchises(ids=ids, order=order, first_entry=first_entry, unrecommendable=unrecommendable)


# ---------------------------------------------------------------------------------------------------- titles
def title_key(title: str) -> tuple[str, ...]:
    """The key words of a title (see the module docstring): "Shingeki no Kyojin Season 3 Part 2" ->
    ("shingeki", "no", "kyojin"). Empty when nothing distinctive is left."""
    return _split_title(title)[0]


def _split_title(title: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(key, subtitle words, whole main part for a "/" title or ())."""
    found = _SUBTITLE_START.search(title)
    main, subtitle = (title[:found.start()], title[found.end():]) if found else (title, "")
    whole: tuple[str, ...] = ()
    slash = _SLASH.search(main) if "/" in main else None
    if slash:
        whole = _usable(_strip_markers(_WORD.findall(_fold(main))))
        main = main[:slash.start()]
    return (_usable(_strip_markers(_WORD.findall(_fold(main)))),
            tuple(_WORD.findall(_fold(subtitle))) if subtitle else (), whole)


def japanese_key(name: Any) -> str:
    """The opening of a Japanese title, up to its first space or bracket, "劇場版" (theatrical) left out; "" when
    it is in Latin letters (it would only repeat the romaji) or too short to name a show (one character, or two
    without a kanji). "ソードアート・オンライン オルタナティブ ガンゲイル・オンライン" -> "ソードアート・オンライン"."""
    text = _text(name)
    if not text or text.isascii():
        return ""
    text = _JAPANESE_LEADING.sub("", unicodedata.normalize("NFKC", text).casefold())
    head = _JAPANESE_CUT.split(text, maxsplit=1)[0].rstrip("'°。.・!?")  # "銀魂°", "銀魂。" are "銀魂" seasons
    if head.isascii():
        return ""
    # two kanji are a name ("銀魂"); two kana are too common a word
    return head if len(head) >= 3 or (len(head) == 2 and _KANJI.search(head)) else ""


def _fold(text: str, keep_case: bool = False) -> str:
    """Lower-case ASCII: accents dropped ("Pokémon" -> "pokemon"), full-width letters made plain, any other
    character a space."""
    text = _APOSTROPHES.sub("", text)  # "JoJo's" -> "jojos", "Gintama'" -> "gintama"
    if not text.isascii():
        text = text.replace("×", " x ")  # "Hunter×Hunter"
        text = _NOT_ASCII.sub(" ", _COMBINING.sub("", unicodedata.normalize("NFKD", text)))
    return text if keep_case else text.casefold()


def _strip_markers(words: list[str]) -> tuple[str, ...]:
    while len(words) > 1 and words[0] in _LEADING_WORDS:
        words.pop(0)
    while len(words) > 1:
        last, before = words[-1], words[-2]
        if before in _SEASON_WORDS and _COUNTER_WORD.fullmatch(last) and len(words) > 2:
            del words[-2:]  # "season 2", "part ii"
        elif last in _SEASON_WORDS and (before in _ORDINAL_WORDS or _COUNTER.fullmatch(before)) and len(words) > 2:
            del words[-2:]  # "2nd season", "final season"
        elif last in _KIND_WORDS or _COUNTER.fullmatch(last):
            words.pop()
        else:
            break
    return tuple(words)


def _usable(words: tuple[str, ...]) -> tuple[str, ...]:
    return words if len("".join(words)) >= 3 and not _PARTICLES.issuperset(words) else ()


def _is_strong(key: tuple[str, ...]) -> bool:
    return len(key) >= 2 and len("".join(key)) >= STRONG_KEY_LETTERS


# ---------------------------------------------------------------------------------------------------- franchises
def franchise_ids(names: Sequence[Any], english_names: Sequence[Any], synonyms: Sequence[Any],
                  studios: Sequence[Any], types: Sequence[Any], *, japanese_names: Sequence[Any] | None = None,
                  synopses: Sequence[Any] | None = None,
                  content: np.ndarray | None = None, explain: list[tuple[int, int, str]] | None = None) -> np.ndarray:
    """int32 franchise id per anime row (rules: module docstring), 0..n_franchises-1 numbered by first row.

    ``synonyms`` and ``studios``: a list per row (or comma-separated text); ``content``: (n, d) L2-normalised
    content features, or None to decide on titles and studios alone. ``explain``: a list to receive every link
    that joined two franchises, as (row, row, rule)."""
    n = len(names)
    is_music = np.array([_text(value) == "Music" for value in types], dtype=bool)
    keys: dict[tuple[str, ...], list[int]] = {}
    strong_keys_of: list[set[tuple[str, ...]]] = []
    subtitles: list[set[tuple[str, ...]]] = []
    first_words: list[str] = []
    for row in range(n):
        romaji_keys, english_keys, own_subtitles, name_key = _row_keys(
            _text(names[row]), _text(english_names[row]), _labels(synonyms[row]))
        for key in romaji_keys | english_keys:
            keys.setdefault(key, []).append(row)
        # English keys are left out: a story's "Space Academy" is some other show's English title
        strong_keys_of.append({key for key in romaji_keys if _is_strong(key)})
        subtitles.append(own_subtitles)
        first_words.append(name_key[0] if name_key and not is_music[row] else "")

    japanese = [japanese_key(value) for value in japanese_names] if japanese_names is not None else [""] * n
    links = _Links(n, _studio_sets(studios), japanese, content, explain)
    for key, rows in keys.items():
        if _is_strong(key):
            links.always(rows, f"same key: {' '.join(key)}")
        else:
            rows = [row for row in rows if not is_music[row]][:_MAX_PAIRWISE]
            rule = f"same weak key: {' '.join(key)}"
            for i, a in enumerate(rows):
                for b in rows[i + 1:]:
                    links.check(a, b, rule, cosine=WEAK_KEY_MIN_COSINE, japanese_prefix=True)
    _link_prefixes(keys, is_music, links)
    _link_subtitles(keys, subtitles, is_music, links)
    if synopses is not None:
        links.resolve()  # the mentions are looked for only between anime not linked yet
        _link_mentions(first_words, strong_keys_of, synopses, links)
    return links.franchise_ids()


def _row_keys(name: str | None, english: str | None, synonyms: list[str]
              ) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]], set[tuple[str, ...]], tuple[str, ...]]:
    """(keys of the romaji titles, keys of the English name, subtitles, the name's key) of one anime."""
    keys: set[tuple[str, ...]] = set()
    subtitles: set[tuple[str, ...]] = set()
    name_key: tuple[str, ...] = ()
    for title in [name, *synonyms]:
        if not title:
            continue
        key, subtitle, whole = _split_title(title)
        if title is name:
            name_key = key
        keys.update(candidate for candidate in (key, whole) if candidate)
        if subtitle:
            subtitles.add(subtitle)
        if len(key) == 1 and key[0].endswith(_COMPOUND_SUFFIX) and key[0] != _COMPOUND_SUFFIX:
            keys.add((_COMPOUND_SUFFIX,))
    english_keys: set[tuple[str, ...]] = set()
    if english and english != name:
        key, _, whole = _split_title(english)
        english_keys.update(candidate for candidate in (key, whole) if _is_strong(candidate))
    return keys, english_keys, subtitles, name_key


class _Links:
    """Candidate links, checked against the evidence of their rule, then joined by union-find. A franchise's root
    is its first row."""

    def __init__(self, n: int, studio_sets: list[frozenset[int]], japanese_keys: list[str],
                 content: np.ndarray | None, explain: list[tuple[int, int, str]] | None) -> None:
        self._parent = list(range(n))
        self._studios = studio_sets
        self._japanese = japanese_keys
        self._content = None if content is None else np.asarray(content, dtype=np.float32)
        self._explain = explain
        # links waiting for a cosine: (a, b, minimum cosine, rule)
        self._pending: list[tuple[int, int, float, str]] = []

    def always(self, rows: Sequence[int], rule: str) -> None:
        for row in rows[1:]:
            self._union(rows[0], row, rule)

    def check(self, a: int, b: int, rule: str, *, cosine: float | None, disjoint_cosine: float | None = None,
              japanese_prefix: bool = False) -> None:
        """Link a and b when they share a studio or their Japanese titles open alike (``japanese_key``; with
        ``japanese_prefix`` one may also open the other), else when their content cosine reaches ``cosine``
        (``disjoint_cosine`` when both have studios and none in common; None: never)."""
        studios_a, studios_b = self._studios[a], self._studios[b]
        if studios_a & studios_b or self._same_japanese(a, b, japanese_prefix):
            self._union(a, b, rule)
            return
        if studios_a and studios_b and disjoint_cosine is not None:
            cosine = disjoint_cosine
        if cosine is not None and self._content is not None:
            self._pending.append((a, b, cosine, rule))

    def check_both(self, a: int, b: int, rule: str, cosine: float, content_required: bool = False) -> None:
        """Link a and b when they share a studio and their content cosine reaches ``cosine`` (without content
        features: the studio alone, unless ``content_required``)."""
        if self._studios[a] & self._studios[b]:
            if self._content is None:
                if not content_required:
                    self._union(a, b, rule)
            else:
                self._pending.append((a, b, cosine, rule))

    def _same_japanese(self, a: int, b: int, prefix: bool) -> bool:
        key_a, key_b = self._japanese[a], self._japanese[b]
        if not key_a or not key_b:
            return False
        if prefix:
            return key_a.startswith(key_b) or key_b.startswith(key_a)
        return key_a == key_b

    def root(self, row: int) -> int:
        parent = self._parent
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    def resolve(self) -> None:
        """Decide the links waiting for a cosine, all in one product."""
        if not self._pending:
            return
        pairs = np.array([(a, b) for a, b, _, _ in self._pending], dtype=np.int64)
        thresholds = np.array([threshold for _, _, threshold, _ in self._pending], dtype=np.float32)
        cosines = np.einsum("ij,ij->i", self._content[pairs[:, 0]], self._content[pairs[:, 1]])
        for index in np.flatnonzero(cosines >= thresholds).tolist():
            a, b, _, rule = self._pending[index]
            self._union(a, b, rule)
        self._pending.clear()

    def franchise_ids(self) -> np.ndarray:
        self.resolve()
        roots = np.array([self.root(row) for row in range(len(self._parent))], dtype=np.int64)
        return np.unique(roots, return_inverse=True)[1].astype(np.int32)  # roots are first rows: ids by first row

    def _union(self, a: int, b: int, rule: str) -> None:
        root_a, root_b = self.root(a), self.root(b)
        if root_a != root_b:
            self._parent[max(root_a, root_b)] = min(root_a, root_b)
            if self._explain is not None:
                self._explain.append((a, b, rule))


def _link_prefixes(keys: dict[tuple[str, ...], list[int]], is_music: np.ndarray, links: _Links) -> None:
    """Rule 3: key A + more words = key B."""
    ordered = sorted(" ".join(key) for key in keys)
    for text in ordered:
        start = bisect.bisect_left(ordered, text + " ")
        stop = bisect.bisect_left(ordered, text + " \U0010ffff", start)
        if start == stop:
            continue
        key = tuple(text.split(" "))
        shorter = [row for row in keys[key] if not is_music[row]][:_MAX_PAIRWISE]
        strong = _is_strong(key)
        for longer_text in ordered[start:stop]:
            longer = [row for row in keys[tuple(longer_text.split(" "))] if not is_music[row]][:_MAX_PAIRWISE]
            rule = f"prefix: {text} < {longer_text}"
            for a in shorter:
                for b in longer:
                    if a == b:
                        continue
                    if strong:
                        links.check(a, b, rule, cosine=PREFIX_MIN_COSINE, disjoint_cosine=PREFIX_DISJOINT_MIN_COSINE)
                    else:  # "air" < "air gear": a big studio (Toei) made both, so the content must agree too
                        links.check_both(a, b, rule, WEAK_PREFIX_MIN_COSINE, content_required=True)


def _link_subtitles(keys: dict[tuple[str, ...], list[int]], subtitles: list[set[tuple[str, ...]]],
                    is_music: np.ndarray, links: _Links) -> None:
    """Rule 4: a key opens another anime's subtitle ("Boruto: Naruto Next Generations")."""
    for b, own_subtitles in enumerate(subtitles):
        if is_music[b]:
            continue
        for subtitle in own_subtitles:
            for length in range(1, len(subtitle) + 1):
                key = _strip_markers(list(subtitle[:length]))
                for a in keys.get(key, ())[:_MAX_PAIRWISE]:
                    if a != b and not is_music[a]:
                        links.check_both(a, b, f"subtitle: {' '.join(key)}", SUBTITLE_MIN_COSINE)


def _link_mentions(first_words: list[str], strong_keys_of: list[set[tuple[str, ...]]], synopses: Sequence[Any],
                   links: _Links) -> None:
    """Rule 5: a synopsis names another anime's strong key as a proper name (capitalised: "one piece of cake" is no
    title), their titles open with the same word (``first_words[row]``, "" for none), and everything it names
    this way is one franchise (a crossover names two: it would join them)."""
    by_first_word: dict[str, list[int]] = {}
    for row, word in enumerate(first_words):
        if len(word) >= 3 and word not in _PARTICLES:
            by_first_word.setdefault(word, []).append(row)
    for rows in by_first_word.values():
        if len(rows) < 2 or len(rows) > _MAX_FIRST_WORD_GROUP:
            continue
        roots = [links.root(row) for row in rows]
        if len(set(roots)) < 2:
            continue  # all one franchise already
        # (key, an anime with it, that anime's franchise so far, the key's longest word)
        phrases: dict[tuple[str, ...], tuple[int, int, str]] = {}
        for row, root in zip(rows, roots, strict=True):
            for key in strong_keys_of[row]:
                phrases.setdefault(key, (row, root, max(key, key=len)))
        for a, root in zip(rows, roots, strict=True):
            synopsis = _text(synopses[a])
            if not synopsis:
                continue
            lowered = synopsis.casefold()
            # a cheap look for the key's longest word first: folding every synopsis would cost the most here
            candidates = [(key, b) for key, (b, b_root, longest) in phrases.items()
                          if b_root != root and longest in lowered]
            if not candidates:
                continue
            words = _CASED_WORD.findall(_fold(synopsis, keep_case=True))
            lowered_words = [word.lower() for word in words]
            named = [(key, b) for key, b in candidates if _names(words, lowered_words, key)]
            if named and len({links.root(b) for _, b in named}) == 1:
                key, b = named[0]
                links.always([a, b], f"synopsis names: {' '.join(key)}")


def _names(words: list[str], lowered_words: list[str], key: tuple[str, ...]) -> bool:
    """Whether a text's ``words`` (case kept; ``lowered_words`` the same lower-cased) have the words of ``key`` in a
    row, the first one capitalised."""
    at, size = -1, len(key)
    while True:
        try:
            at = lowered_words.index(key[0], at + 1)
        except ValueError:
            return False
        if words[at][0].isupper() and tuple(lowered_words[at:at + size]) == key:
            return True


def _studio_sets(studios: Sequence[Any]) -> list[frozenset[int]]:
    codes: dict[str, int] = {}
    return [frozenset(codes.setdefault(label.casefold(), len(codes)) for label in _labels(value))
            for value in studios]


# ---------------------------------------------------------------------------------------------------- order
def start_dates(aired: Sequence[Any] | None, premiered: Sequence[Any] | None,
                years: Sequence[Any] | None) -> np.ndarray:
    """int32 start date per row as yyyymmdd (00 for an unknown month or day), ``UNKNOWN_START`` when unknown:
    from ``aired`` ("Apr 4, 2013 to Jun 27, 2013", "Apr, 2013", "2013"), else ``premiered`` ("Spring 2013" ->
    20130400), else ``year``. Any of the three may be None (not in the table)."""
    columns = [values for values in (aired, premiered, years) if values is not None]
    starts = np.full(len(columns[0]) if columns else 0, UNKNOWN_START, dtype=np.int32)
    if years is not None:
        year = pd.to_numeric(pd.Series(list(years), dtype=object), errors="coerce").to_numpy(float)
        known = np.isfinite(year)
        starts[known] = year[known].astype(np.int32) * 10_000
    for row in range(len(starts)):
        start = _aired_start(aired[row]) if aired is not None else None
        if start is None and premiered is not None:
            start = _premiered_start(premiered[row])
        if start is not None:
            starts[row] = start
    return starts


def _aired_start(value: Any) -> int | None:
    found = _AIRED.match(value) if isinstance(value, str) else None
    if found is None:
        return None
    month_name, day, year = found.groups()
    return int(year) * 10_000 + _MONTHS.get((month_name or "").casefold(), 0) * 100 + int(day or 0)


def _premiered_start(value: Any) -> int | None:
    found = _PREMIERED.match(value) if isinstance(value, str) else None
    return int(found[2]) * 10_000 + _SEASON_MONTHS[found[1].casefold()] * 100 if found else None


def entry_order(ids: np.ndarray, types: Sequence[Any], starts: np.ndarray, anime_ids: np.ndarray,
                members: np.ndarray, unrecommendable: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(order, first_entry): each row's position in its franchise's release order (start date, then anime_id), and
    the row of its franchise's first entry (rule: module docstring)."""
    ids = np.asarray(ids)
    n = len(ids)
    sequence = np.lexsort((np.asarray(anime_ids), np.asarray(starts), ids))
    order = np.empty(n, dtype=np.int32)
    group_start = np.r_[0, np.flatnonzero(np.diff(ids[sequence])) + 1] if n else np.array([], dtype=np.int64)
    positions = np.arange(n) - np.repeat(group_start, np.diff(np.r_[group_start, n]))
    order[sequence] = positions
    first_entry = np.empty(n, dtype=np.int32)
    type_values = [_text(value) for value in types]
    members = np.nan_to_num(np.asarray(members, dtype=float))
    recommendable = np.ones(n, dtype=bool) if unrecommendable is None else ~np.asarray(unrecommendable, dtype=bool)
    first_entry[sequence] = sequence  # an anime alone is its own first entry
    bounds = np.r_[group_start, n]
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if stop - start > 1:
            rows = sequence[start:stop]  # in release order
            first_entry[rows] = _first_entry(rows, type_values, members, recommendable)
    return order, first_entry


def _first_entry(rows: np.ndarray, types: list[str | None], members: np.ndarray, recommendable: np.ndarray) -> int:
    """``rows`` in release order: the most watched recommendable TV series, film, OVA or ONA, the earliest among equals;
    without one, the most watched recommendable entry."""
    candidates = rows[recommendable[rows]]
    if len(candidates) == 0:
        return int(rows[0])
    main = candidates[[types[row] in _ENTRY_KINDS for row in candidates]]
    pool = main if len(main) else candidates
    return int(pool[np.argmax(members[pool])])


# ---------------------------------------------------------------------------------------------------- unrecommendable
def is_unrecommendable(names: Sequence[Any], english_names: Sequence[Any], japanese_names: Sequence[Any],
                       types: Sequence[Any], synopses: Sequence[Any] | None = None) -> np.ndarray:
    """bool per row: a music video or a recap (rules: module docstring)."""
    flags = np.zeros(len(names), dtype=bool)
    for row in range(len(names)):
        kind = _text(types[row])
        if kind == "Music":
            flags[row] = True
            continue
        titles = f"{_text(names[row]) or ''}\n{_text(english_names[row]) or ''}"
        lowered = titles.casefold()
        if (any(word in lowered for word in _RECAP_TITLE_WORDS) and _RECAP_TITLE.search(titles)
                or _RECAP_JAPANESE in (_text(japanese_names[row]) or "")):
            flags[row] = True
        elif synopses is not None and kind != "TV":
            flags[row] = _says_recap(_text(synopses[row]))
    return flags


def _says_recap(synopsis: str | None) -> bool:
    lowered = synopsis.casefold() if synopsis else ""
    # the pattern is slow to fail: first a cheap look for its words
    found = any(word in lowered for word in ("cap", "summar", "compil")) and _RECAP_SYNOPSIS.search(synopsis)
    if not found:
        return False
    sentence_start = synopsis.rfind(". ", 0, found.start()) + 1
    sentence_end = synopsis.find(". ", found.end())
    return not _PARTIAL_RECAP.search(synopsis[sentence_start:sentence_end if sentence_end >= 0 else None])


# ---------------------------------------------------------------------------------------------------- cells
def _text(value: Any) -> str | None:
    """A metadata string, or None for missing (the catalogue's spellings of "missing" included)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    if len(text) <= 7 and text.casefold() in _MISSING_TEXTS:  # only short texts can spell "missing"
        return None
    return text


def _labels(value: Any) -> list[str]:
    """A list cell (list, array or comma-separated text) as its non-empty labels."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or len(value) == 0:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [label for label in (str(item).strip() for item in items if item is not None)
            if label and label.casefold() != "unknown"]


def _column(anime: pd.DataFrame, name: str, optional: bool = False) -> list[Any] | None:
    """A column of the catalogue table as a list; None for a missing optional one."""
    if name in anime.columns:
        return anime[name].tolist()
    if optional:
        return None
    raise KeyError(f"the catalogue table has no {name!r} column")
