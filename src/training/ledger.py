"""The row ledger: every ratings row read is in the published model or counted under a named reason.

Processing writes the first half into ``summary.json`` (``ledger``): the rows read, the rows kept, and the rows
dropped per reason (malformed, below the user threshold, unknown anime, duplicate). Before a model is published,
``check_published_rows`` reads back what serving will read (``user_ratings.npy``, ``user_ids.json``,
``anime.json``) and checks, pair by pair and with its rating, that it holds exactly the kept rows it should: every
kept row for the served model, or, for the evaluation model, the kept rows in no held-out set (the others are
counted as held out). Any difference stops the run with one line, and nothing is published.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from src.data.files import read_ids
from src.data.processing import read_interactions
from src.data.splits import held_out_counts
from src.errors import UserError
from src.store.artifacts import read_ratings
from utils.common_functions import read_json


class LedgerError(UserError):
    """The model about to be published does not hold exactly the kept rows."""


def check_published_rows(folder: Path, processed_dir: Path, every_rating: bool) -> dict[str, Any]:
    """The ledger of the model in ``folder`` (processing's, plus ``published`` and ``not_published``); raises
    LedgerError when the model holds other rows than the kept ones it should."""
    ledger = read_json(processed_dir / "summary.json").get("ledger")
    if ledger is None:
        raise UserError(f"processed data in {processed_dir} has no row ledger: run the process stage again")
    interactions = read_interactions(processed_dir)
    held_out = interactions["held_out"].to_numpy()
    expected = interactions if every_rating else interactions[held_out == 0]
    catalogue_ids = pd.read_parquet(processed_dir / "anime.parquet", columns=["anime_id"])["anime_id"].to_numpy()
    published = read_ratings(folder / "user_ratings.npy")
    user_ids = read_ids(folder / "user_ids.json")
    published_anime_ids = np.array([record["anime_id"] for record in
                                     json.loads((folder / "anime.json").read_text(encoding="utf-8"))], np.int64)
    width = int(max(catalogue_ids.max(initial=0), published_anime_ids.max(initial=0))) + 1
    problem = _difference(
        _pairs(expected["user_id"].to_numpy(), catalogue_ids[expected["anime_index"].to_numpy()],
               expected["rating"].to_numpy(), width),
        _pairs(user_ids[published["user_index"].to_numpy()], published_anime_ids[published["anime_index"].to_numpy()],
               published["rating"].to_numpy(), width))
    if problem:
        raise LedgerError(f"the model to publish does not hold exactly the {len(expected):,} kept ratings it should: "
                          f"{problem}; nothing was published")
    not_published = {} if every_rating else {f"held_out_{name}": count
                                             for name, count in held_out_counts(held_out).items() if count}
    complete = {**ledger, "published": len(published), "not_published": not_published}
    accounted = complete["published"] + sum(complete["dropped"].values()) + sum(not_published.values())
    if accounted != complete["read"]:
        raise LedgerError(f"{complete['read'] - accounted:,} of the {complete['read']:,} rows read are neither "
                          "published nor dropped for a named reason; nothing was published")
    return complete


def _pairs(user_id: np.ndarray, anime_id: np.ndarray, rating: np.ndarray,
           width: int) -> tuple[np.ndarray, np.ndarray]:
    """(user, anime) pairs as one sorted int64 key each, and their ratings in the same order."""
    key = user_id.astype(np.int64) * width + anime_id.astype(np.int64)
    order = np.argsort(key, kind="stable")
    return key[order], rating[order].astype(np.int16)


def _difference(expected: tuple[np.ndarray, np.ndarray], published: tuple[np.ndarray, np.ndarray]) -> str:
    """'' when both hold the same pairs with the same ratings; otherwise what differs, in a few words."""
    (expected_keys, expected_ratings), (published_keys, published_ratings) = expected, published
    if np.array_equal(expected_keys, published_keys) and np.array_equal(expected_ratings, published_ratings):
        return ""
    missing = np.setdiff1d(expected_keys, published_keys)
    extra = np.setdiff1d(published_keys, expected_keys)
    repeated = len(published_keys) - len(np.unique(published_keys))
    parts = [f"{len(missing):,} missing", f"{len(extra):,} not kept", f"{repeated:,} repeated"]
    if not (len(missing) or len(extra) or repeated):
        parts.append(f"{int(np.count_nonzero(expected_ratings != published_ratings)):,} with another rating")
    return ", ".join(parts)
