"""Franchise-aware lists: a franchise the profile knows nothing of appears once, at its first entry, never a later
season; a franchise the profile is watching shows its next entries, at most ``seen_cap`` of them; recaps and music
videos never.

Walking down the candidates best first (``top_k``'s order and tie-break):

- an anime of a franchise the profile has none of (``seen``: the franchises of what it already knows) stands for its
  franchise's first entry (src/engine/franchises.py: "Enen no Shouboutai", not its second season), which takes its
  place, once; when that entry may not be shown (filtered out, already known, a recap, not yet aired) the franchise
  is passed over rather than entered at a later season. So other shows get the room: no Golden Kamuy flood among
  Demon Slayer's similar anime (whose own franchise is capped at one too: ``for_similar``);
- an anime of a franchise the profile has seen is shown as it ranks, up to ``seen_cap`` entries of that franchise
  (None: no cap). Measured on the embedded sample at 50 ratings, people's held-out anime include the next entries
  of what they watch: a cap of 1 there cost 0.018 of the known users' Recall@10 and 0.019 of the newcomers';
  leaving them uncapped cost 0.002 and 0.0045 (closing note of issue 28, bench/RESULTS.md);
- recaps, music videos, unaired and (by default) adult titles never get here: the catalogue's masks keep them out of
  the candidates (src/engine/catalogue.py).

Serving and the evaluation both rank through ``franchise_top_k``, so the offline figures are those of these lists.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from src.engine.ranking import top_k


@dataclass(frozen=True)
class FranchiseRules:
    """Row j of each array is catalogue anime j."""

    franchise: np.ndarray  # franchise id of each anime
    first_entry: np.ndarray  # the catalogue row of its franchise's first entry
    seen_cap: int | None = None  # at most this many entries of a franchise the profile has seen; None: no cap

    def seen(self, known: np.ndarray) -> set[int]:
        """The franchises of the anime indices ``known``."""
        return set(self.franchise[np.asarray(known, dtype=np.int64)].tolist())

    def seen_mask(self, known: np.ndarray) -> np.ndarray:
        """``seen`` as a boolean mask over the franchise ids: what ``walk`` reads (a set of a long list's
        franchises costs a request several times more to build)."""
        return self._mask(self.franchise[np.asarray(known, dtype=np.int64)])

    def mask_of(self, franchises: set[int]) -> np.ndarray:
        """A set of franchise ids as a ``seen_mask``."""
        return self._mask(np.fromiter(franchises, np.int64, len(franchises)))

    def _mask(self, franchise_ids: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.n_franchises, dtype=bool)
        mask[franchise_ids] = True
        return mask

    @cached_property
    def n_franchises(self) -> int:
        return int(self.franchise.max(initial=-1)) + 1

    def for_similar(self) -> FranchiseRules:
        """The rules of a similar-anime list: the title's own franchise (its one "seen") shows one entry."""
        return self._similar_rules

    @cached_property
    def _similar_rules(self) -> FranchiseRules:  # made once: every similar-anime request asks for them
        return FranchiseRules(self.franchise, self.first_entry, 1)


def may_show(allowed: np.ndarray | None, known: np.ndarray, width: int) -> np.ndarray:
    """What a list may show one profile: ``allowed`` (all when None) but none of the anime it ``known``s."""
    mask = np.ones(width, dtype=bool) if allowed is None else np.array(allowed, dtype=bool)
    mask[np.asarray(known, dtype=np.int64)] = False
    return mask


def franchise_top_k(scores: np.ndarray, k: int, rules: FranchiseRules | None, *,
                    exclude: sp.csr_matrix | None = None, allowed: np.ndarray | None = None,
                    tiebreak: np.ndarray | None = None, seen: list[set[int]] | None = None) -> np.ndarray:
    """``top_k`` with the franchise rules (module docstring): (n x k) anime indices, best first, -1 padded.

    ``seen``: per row, the franchises the profile already knows (default: those of its ``exclude`` row).
    Without ``rules`` it is ``top_k`` itself."""
    if rules is None:
        return top_k(scores, k, exclude=exclude, allowed=allowed, tiebreak=tiebreak)
    scores = np.asarray(scores)
    scores = scores[None, :] if scores.ndim == 1 else scores
    n_rows, width = scores.shape
    exclude = sp.csr_matrix(exclude) if exclude is not None else sp.csr_matrix((n_rows, width), dtype=np.float32)
    # Enough candidates that the cap rarely runs a list dry; a row that does run dry is ranked again in full.
    depth = min(width, 4 * k + 40)
    candidates = top_k(scores, depth, exclude=exclude, allowed=allowed, tiebreak=tiebreak)
    lists = np.full((n_rows, k), -1, dtype=np.int64)
    for row in range(n_rows):
        known = exclude.indices[exclude.indptr[row]:exclude.indptr[row + 1]]
        seen_here = rules.seen_mask(known) if seen is None else rules.mask_of(seen[row])
        showable = may_show(allowed, known, width)
        chosen = walk(candidates[row], k, rules, seen_here, showable)[0]
        if len(chosen) < k and depth < width and candidates[row, -1] >= 0:
            every = top_k(scores[row], width, exclude=exclude[row], allowed=allowed, tiebreak=tiebreak)[0]
            chosen = walk(every, k, rules, seen_here, showable)[0]
        lists[row, :len(chosen)] = chosen
    return lists


def walk(candidates: np.ndarray, k: int, rules: FranchiseRules, seen: np.ndarray,
         showable: np.ndarray) -> tuple[list[int], list[int]]:
    """The list the rules make of ``candidates`` (ranked best first, -1 ends them): (the anime shown, at most
    ``k``; the position in ``candidates`` each was chosen at). ``seen``: the profile's ``seen_mask``; ``showable``:
    what the list may show the profile (``may_show``), which a franchise's first entry standing in must pass. Only
    the candidates up to the k-th choice are read, so any ranking that starts with the same ones gives the same list
    (src/engine/candidates.py relies on it)."""
    chosen: list[int] = []
    positions: list[int] = []
    shown: dict[int, int] = {}
    franchise_of, first_entry = rules.franchise, rules.first_entry
    for position, candidate in enumerate(candidates.tolist()):
        if candidate < 0:
            break
        franchise = int(franchise_of[candidate])
        unseen = not seen[franchise]
        cap = 1 if unseen else rules.seen_cap
        if cap is not None and shown.get(franchise, 0) >= cap:
            continue
        if unseen:
            candidate = int(first_entry[candidate])
            if candidate in chosen or not showable[candidate]:
                continue
        chosen.append(candidate)
        positions.append(position)
        shown[franchise] = shown.get(franchise, 0) + 1
        if len(chosen) == k:
            break
    return chosen, positions
