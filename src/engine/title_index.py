"""Title search in well under a millisecond over every title of the catalogue."""
from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

EXACT, PREFIX, SUBSTRING = 3, 2, 1


def normalise_title(text: str) -> str:
    """Case-folded, whitespace collapsed. Tabs and newlines separate entries in the haystack, so they never survive."""
    return " ".join(str(text).split()).casefold()


class TitleIndex:
    """Exact matches via a dict, prefix matches via bisect over the sorted titles, substring matches via
    ``str.find`` over one string holding every title, most popular anime first.

    Because the big string is in popularity order, the first substring hits found are the best ones, so a
    short, common query stops after ``limit`` hits instead of visiting thousands of titles.
    """

    _SEPARATOR = "\n"

    def __init__(self, titles_per_anime: Sequence[Sequence[str]], members: np.ndarray) -> None:
        """``titles_per_anime[j]``: every title anime j is known by (name, English name, ...)."""
        self._members = members
        normalised = [[normalise_title(title) for title in titles if title] for titles in titles_per_anime]
        pairs = [(title, index) for index, titles in enumerate(normalised) for title in titles]
        self._exact: dict[str, list[int]] = {}
        for title, index in pairs:
            self._exact.setdefault(title, []).append(index)
        pairs.sort()
        self._sorted_titles = [title for title, _ in pairs]
        self._sorted_index = np.array([index for _, index in pairs], dtype=np.int64)
        popular_first = np.argsort(-members, kind="stable")
        entries = ["\t".join(normalised[i]) for i in popular_first]
        self._haystack = self._SEPARATOR.join(entries) + self._SEPARATOR
        self._entry_starts = np.cumsum([0] + [len(entry) + 1 for entry in entries])[:-1].tolist()
        self._entry_index = popular_first.tolist()

    def search(self, text: str, limit: int) -> list[tuple[int, int]]:
        """[(anime index, EXACT | PREFIX | SUBSTRING)] best first, at most ``limit``; ``text`` normalised."""
        found: dict[int, int] = {}
        for index in sorted(dict.fromkeys(self._exact.get(text, [])), key=lambda i: -self._members[i]):
            found.setdefault(index, EXACT)
        if len(found) < limit:
            for index in self._prefix_matches(text, limit + len(found)):
                found.setdefault(index, PREFIX)
        if len(found) < limit:
            for index in self._substring_matches(text, limit + len(found)):
                found.setdefault(index, SUBSTRING)
        return list(found.items())[:limit]

    def count(self, text: str) -> int:
        """How many anime have a title containing ``text`` (normalised): ``str.find`` hops from a hit to the next
        entry, so the cost follows the matches (microseconds for a name; a regular expression with ``^.*`` took
        5 ms for every query)."""
        if not text:
            return 0
        count, position = 0, 0
        while (position := self._haystack.find(text, position)) >= 0:
            count += 1
            position = self._haystack.find(self._SEPARATOR, position) + 1
        return count

    def _prefix_matches(self, text: str, wanted: int) -> list[int]:
        low = bisect.bisect_left(self._sorted_titles, text)
        high = bisect.bisect_left(self._sorted_titles, text + "\U0010ffff", low)
        candidates = np.unique(self._sorted_index[low:high])
        if len(candidates) > wanted:
            members = self._members[candidates]
            candidates = candidates[np.argpartition(-members, wanted - 1)[:wanted]]
        return sorted(candidates.tolist(), key=lambda i: -self._members[i])

    def _substring_matches(self, text: str, wanted: int) -> list[int]:
        hits, position = [], 0
        while len(hits) < wanted:
            position = self._haystack.find(text, position)
            if position < 0:
                break
            entry = bisect.bisect_right(self._entry_starts, position) - 1
            hits.append(self._entry_index[entry])
            next_entry = entry + 1
            position = self._entry_starts[next_entry] if next_entry < len(self._entry_starts) else len(self._haystack)
        return hits
