"""Candidates computed at publish, so that a known user's recommendations and an anime's similar anime are read, not
scored, per request (the two-stage design: candidate generation offline, a cheap online stage; Covington et al. 2016).

For every known user, the top K anime of the model's own mix; for every catalogue anime, its top K similar anime.
Each is the plain ranking, best first, exactly as serving ranks it live (the scores of the one-profile path, the
anime the profile knows excluded, what lists may show, the popularity tie-break) but before the franchise rules:
a filter does not commute with those rules (a franchise enters at its first entry, and only when that entry may be
shown), while it does with the plain ranking. So the online stage filters the candidates, which leaves an exact
prefix of the live filtered ranking, and walks the franchise rules over it (src/engine/diversity.py, ``walk``):
the same list as live whenever the walk fills the list before the candidates run out, or the candidates hold the
whole ranking. Otherwise, and for anything the tables were not built for (other weights, an adult opt-in on
similar anime, a favourites list or an import), serving scores live as before.

Each candidate keeps the score of the anime a list would show for it: itself, or its franchise's first entry when
the profile has not seen the franchise (the ``match`` or ``similarity`` of the item shown), and what the reasons
need of it, so that the online stage only words them (src/engine/explanations.py): for a known user's
(``USER_REASONS``), how many of the user's similar users prefer it and which of the user's preferred anime the reason
names (``reason_sources``); for a title's (``SIMILAR_REASONS``), whether their stories are alike. Those are what
live scoring computes for the anime alone, never for a batch.

Files of a model version (written by ``write_candidates`` at publish, src/store/registry.py):
- ``candidate_users.npy`` / ``candidate_user_scores.npy``: (users x K) catalogue rows and float32 scores;
- ``candidate_user_reasons.npy``: (users x K) ``USER_REASONS`` records (7 bytes each);
- ``candidate_anime.npy`` / ``candidate_anime_scores.npy`` / ``candidate_anime_reasons.npy``: (catalogue x K)
  likewise, for similar anime (``SIMILAR_REASONS``, 1 byte each);
- ``candidates.json``: K of each, whether each has its reasons, how many similar users the users' counts asked, and
  the serving settings the tables were computed with (``fingerprint``).
Rows are uint16 when the catalogue allows it (17,562 anime: 13 bytes a user's candidate, 7 a title's), padded with
the catalogue size. A model published before the reasons were stored serves its candidates with reasons computed
live.
A server whose settings differ from the fingerprint, or whose tables fail their checks, serves live and says so.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from config.settings import ServingConfig
from src.engine.explanations import NO_SOURCE, SAME_STUDIO
from src.errors import ArtifactError

META_FILE = "candidates.json"
FILES = {"users": ("candidate_users.npy", "candidate_user_scores.npy"),
         "anime": ("candidate_anime.npy", "candidate_anime_scores.npy")}
REASON_FILES = {"users": "candidate_user_reasons.npy", "anime": "candidate_anime_reasons.npy"}
# A known user's reasons for one candidate: similar users who prefer it; the position, in the user's preferred anime
# (best first), of the one the reason names (-1: none); how it is named (explanations.NO_SOURCE, ALIKE, SAME_STUDIO)
USER_REASONS = np.dtype([("count", "<u2"), ("source", "<i4"), ("kind", "i1")])
# A title's reasons for one of its similar anime: whether the two synopses are alike (explanations.STORY_THRESHOLD)
SIMILAR_REASONS = np.dtype([("story_alike", "?")])
REASON_DTYPES = {"users": USER_REASONS, "anime": SIMILAR_REASONS}


@dataclass(frozen=True)
class CandidateTable:
    """Row i: the candidates of profile i (a user row, or a catalogue anime), best first; padded with ``pad``."""

    rows: np.ndarray  # (profiles x K) catalogue rows
    scores: np.ndarray  # (profiles x K) float32: the score of the anime shown for each candidate
    pad: int
    reasons: np.ndarray | None = None  # (profiles x K) USER_REASONS or SIMILAR_REASONS of the anime shown
    similar_users: int = 0  # how many similar users a known user's reasons' counts asked

    @property
    def k(self) -> int:
        return self.rows.shape[1]

    def of(self, profile: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(candidate rows, their scores, whether the table was full for this profile: more may exist beyond K)."""
        rows = self.rows[profile]
        count = int(np.searchsorted(rows == self.pad, True)) if rows[-1] == self.pad else len(rows)
        return rows[:count].astype(np.int64), self.scores[profile, :count], count == len(rows)


@dataclass(frozen=True)
class Candidates:
    users: CandidateTable | None
    anime: CandidateTable | None


def fingerprint(config: ServingConfig, hybrid: dict[str, Any] | None) -> dict[str, Any]:
    """The settings the tables are computed with, the serving ones and the model's mix (its manifest's ``hybrid``):
    a server with other values, or a model folder changed since, cannot use them."""
    return {"hybrid": hybrid, "preference_percentile": config.preference_percentile, "genre_boost": config.genre_boost,
            "preferred_genres": config.preferred_genres, "unrated_weight": config.unrated_weight,
            "similar_content_weight": config.similar_content_weight, "franchise_rules": config.franchise_rules}


def build_candidates(engine: Any, users_k: int, anime_k: int) -> Candidates:
    """Every known user's and every anime's candidates, from ``engine`` (a Recommender) ranking them one profile at
    a time, exactly as a request does. One BLAS thread: a matrix product split over threads may round differently
    from the one a request runs, and the tables must hold the very scores serving computes."""
    with threadpool_limits(1):
        users = _table(engine.n_users, users_k, engine.n_anime, engine.ranked_for_user, USER_REASONS) \
            if users_k else None
        anime = _table(engine.n_anime, anime_k, engine.n_anime, engine.ranked_similar, SIMILAR_REASONS) \
            if anime_k else None
    return Candidates(users, anime)


def _table(profiles: int, k: int, width: int, ranked: Any, reasons_dtype: np.dtype) -> CandidateTable:
    """``ranked(profile, k)``: (candidates, their scores, their reasons' records[, similar users asked])."""
    dtype = np.uint16 if width < np.iinfo(np.uint16).max else np.int32
    rows = np.full((profiles, k), width, dtype=dtype)
    scores = np.zeros((profiles, k), np.float32)
    reasons = np.zeros((profiles, k), reasons_dtype)
    if "source" in reasons_dtype.names:
        reasons["source"] = -1  # the padding names no anime
    asked = 0
    for profile in range(profiles):
        found, found_scores, found_reasons, *counted = ranked(profile, k)
        rows[profile, :len(found)], scores[profile, :len(found)] = found, found_scores
        reasons[profile, :len(found)] = found_reasons
        asked = counted[0] if counted else 0
    if "count" in reasons_dtype.names and asked > np.iinfo(np.uint16).max:
        raise ArtifactError(f"{asked:,} similar users do not fit the candidates' reasons: lower hybrid's "
                            "similar_users")
    return CandidateTable(rows, scores, width, reasons, asked)


def verify_candidates(engine: Any, sample: int = 20, seed: int = 0) -> None:
    """Raise ArtifactError unless ``engine``'s candidates give the live lists for a seeded sample of its users and
    anime (the publish check; tests/test_candidates.py compares every one)."""
    if engine.candidates is None:
        return
    live = copy.copy(engine)
    live.candidates = None
    rng = np.random.default_rng(seed)
    with threadpool_limits(1):
        for user in rng.choice(engine.user_ids, min(sample, engine.n_users), replace=False).tolist():
            if engine.recommend_for_user(user) != live.recommend_for_user(user):
                raise ArtifactError(f"the candidates do not give user {user} the live recommendations: publish the "
                                    "model again")
        for anime in rng.choice(engine.anime_ids, min(sample, engine.n_anime), replace=False).tolist():
            if engine.similar_anime(anime) != live.similar_anime(anime):
                raise ArtifactError(f"the candidates do not give anime {anime} its live similar anime: publish the "
                                    "model again")


def write_candidates(folder: Path, candidates: Candidates, config: ServingConfig,
                     hybrid: dict[str, Any] | None) -> None:
    meta: dict[str, Any] = {"fingerprint": fingerprint(config, hybrid)}
    for name, table in (("users", candidates.users), ("anime", candidates.anime)):
        meta[f"{name}_k"] = table.k if table is not None else 0
        if table is not None:
            rows_file, scores_file = FILES[name]
            np.save(folder / rows_file, table.rows, allow_pickle=False)
            np.save(folder / scores_file, table.scores, allow_pickle=False)
            if table.reasons is not None:
                np.save(folder / REASON_FILES[name], table.reasons, allow_pickle=False)
                meta[f"{name}_reasons"] = True
                if name == "users":
                    meta["reasons_similar_users"] = table.similar_users
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def drop_table(folder: Path, name: str) -> bool:
    """Leave one table ("users" or "anime") out of a model version's candidates: what it held is then scored live.
    True when there was one to leave out."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not meta.get(f"{name}_k"):
        return False
    for file in (*FILES[name], REASON_FILES[name]):
        (folder / file).unlink(missing_ok=True)
    meta[f"{name}_k"] = 0
    meta.pop(f"{name}_reasons", None)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return True


def load_candidates(folder: Path, config: ServingConfig, hybrid: dict[str, Any] | None, n_users: int,
                    n_anime: int, preferred_counts: np.ndarray | None = None) -> Candidates | None:
    """The tables of ``folder``, memory-mapped (the workers share their pages); None when it has none or they were
    computed with other serving settings (``fingerprint``). Raises ArtifactError when a table is malformed.
    ``preferred_counts``: how many preferred anime each user has, which a reason's source must point within."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{META_FILE} is unreadable ({error}): publish the model again") from error
    if meta.get("fingerprint") != fingerprint(config, hybrid):
        return None
    tables = {}
    for name, profiles in (("users", n_users), ("anime", n_anime)):
        if not meta.get(f"{name}_k"):
            tables[name] = None
            continue
        rows_file, scores_file = FILES[name]
        try:
            rows = _mapped(folder / rows_file)
            scores = _mapped(folder / scores_file)
        except (OSError, ValueError) as error:
            raise ArtifactError(f"{rows_file} or {scores_file} is unreadable ({error}): publish the model again") \
                from error
        _check(rows, scores, profiles, int(meta[f"{name}_k"]), n_anime, rows_file)
        reasons = _load_reasons(folder, meta, name, rows, preferred_counts)
        asked = int(meta.get("reasons_similar_users", 0)) if name == "users" else 0
        tables[name] = CandidateTable(rows, scores, n_anime, reasons, asked)
    return Candidates(tables["users"], tables["anime"])


def _mapped(path: Path) -> np.ndarray:
    """The array in ``path``, memory-mapped, as a plain ndarray view of the mapping: numpy's memmap class costs a
    few microseconds of bookkeeping on every slice a request takes, and the view keeps the mapping open."""
    return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))


def _load_reasons(folder: Path, meta: dict[str, Any], name: str, rows: np.ndarray,
                  preferred_counts: np.ndarray | None) -> np.ndarray | None:
    """A table's reasons, memory-mapped; None for a model published before they were stored."""
    if not meta.get(f"{name}_reasons"):
        return None
    file = REASON_FILES[name]
    try:
        reasons = _mapped(folder / file)
    except (OSError, ValueError) as error:
        raise ArtifactError(f"{file} is unreadable ({error}): publish the model again") from error
    if reasons.shape != rows.shape or reasons.dtype != REASON_DTYPES[name]:
        raise ArtifactError(f"{file} must hold one reason record per candidate, {rows.shape}, not "
                            f"{reasons.shape} of {reasons.dtype}: publish the model again")
    if name == "users":
        kinds, sources = np.asarray(reasons["kind"]), np.asarray(reasons["source"])
        names_none = (kinds == NO_SOURCE) != (sources == -1)
        beyond = preferred_counts is not None and np.any(sources >= np.asarray(preferred_counts)[:, None])
        if (np.any((kinds < NO_SOURCE) | (kinds > SAME_STUDIO)) or np.any(names_none) or sources.min(initial=0) < -1
                or beyond or np.any(np.asarray(reasons["count"]) > int(meta.get("reasons_similar_users", 0)))):
            raise ArtifactError(f"{file} holds reasons that name no anime or count more similar users than were "
                                "asked: publish the model again")
    return reasons


def _check(rows: np.ndarray, scores: np.ndarray, profiles: int, k: int, width: int, name: str) -> None:
    if rows.shape != (profiles, k) or scores.shape != (profiles, k):
        raise ArtifactError(f"{name} must hold {k} candidates for each of {profiles:,} rows, not shape "
                            f"{rows.shape} (scores {scores.shape}): publish the model again")
    if rows.dtype not in (np.uint16, np.int32) or scores.dtype != np.float32:
        raise ArtifactError(f"{name} has the wrong types ({rows.dtype}, {scores.dtype}): publish the model again")
    valid = np.asarray(rows) < width
    if np.asarray(rows).min(initial=0) < 0 or np.any(np.asarray(rows)[~valid] != width):
        raise ArtifactError(f"{name} holds rows outside the catalogue of {width:,} anime: publish the model again")
    if np.any(valid[:, 1:] & ~valid[:, :-1]) or not np.all(np.isfinite(np.asarray(scores)[valid])):
        raise ArtifactError(f"{name} has a gap in its candidates or a score that is not finite: publish the model "
                            "again")
