"""A synthetic Kaggle 2020 ``animelist.csv`` of any size, shaped like the real 109 M-row file.

    python -m bench.synthetic_animelist /tmp/raw --rows 20000000       # + anime.csv(.zip) beside it

Shape (all seeded):
- users: about 325k at 109 M rows (scaled with the row count unless ``--users`` is given), long-tailed activity
  (log-normal list lengths, capped at half the catalogue);
- anime: the embedded sample's real 17,562 MAL ids, Zipf-like popularity by their real ``Members`` rank;
- each user lists an anime at most once; rows grouped by user like the real file;
- about 40% of rows are unrated (rating 0, mostly "plan to watch"), rated rows are 1..10 skewed to 7-9;
- the real file's five columns: user_id, anime_id, rating, watching_status, watched_episodes.

Written in chunks of users with pyarrow's CSV writer, so memory stays flat however many rows are asked for.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv

from config.paths_config import SAMPLE_DATA_DIR

FULL_ROWS = 109_224_747   # the real animelist.csv
FULL_USERS = 325_772      # its users
HEADER = "user_id,anime_id,rating,watching_status,watched_episodes\n"
UNRATED_SHARE = 0.4
# Rated rows: MyAnimeList scores lean high (7-9 most common).
RATING_SHARES = np.array([0.005, 0.005, 0.01, 0.02, 0.05, 0.10, 0.22, 0.27, 0.19, 0.13])
# watching_status codes of the 2020 files: 1 watching, 2 completed, 3 on hold, 4 dropped, 6 plan to watch.
STATUS_CODES = np.array([1, 2, 3, 4, 6], dtype=np.int8)
STATUS_SHARES_RATED = np.array([0.08, 0.80, 0.04, 0.08, 0.0])
STATUS_SHARES_UNRATED = np.array([0.10, 0.20, 0.03, 0.02, 0.65])
ZIPF_EXPONENT = 0.8
ACTIVITY_SIGMA = 1.2      # log-normal spread of list lengths: most users list a few hundred, some thousands


def anime_catalogue(sample_dir: Path = SAMPLE_DATA_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(MAL ids, episode counts) of the real anime table, most popular (by Members) first."""
    anime = pd.read_csv(sample_dir / "anime.csv.zip", usecols=["MAL_ID", "Members", "Episodes"], na_values=["Unknown"])
    anime = anime.sort_values("Members", ascending=False, kind="stable")
    episodes = anime["Episodes"].fillna(12).clip(1, 2000).to_numpy(np.int32)
    return anime["MAL_ID"].to_numpy(np.int64), episodes


def list_lengths(rows: int, users: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Per-user row counts: long-tailed, each in [1, cap], summing to exactly ``rows``."""
    if rows > users * cap:
        raise ValueError(f"{rows} rows cannot fit {users} users listing at most {cap} anime each")
    weights = rng.lognormal(0.0, ACTIVITY_SIGMA, users)
    counts = np.minimum(1 + np.floor(weights / weights.sum() * (rows - users)).astype(np.int64), cap)
    for _ in range(1000):  # hand out what rounding and the cap left over, to users with room
        missing = rows - int(counts.sum())
        if missing == 0:
            return counts
        room = np.flatnonzero(counts < cap)
        chosen = rng.choice(room, size=min(missing, len(room)), replace=False)
        counts[chosen] += 1
    raise RuntimeError("could not distribute the rows over the users")


def distinct_anime(counts: np.ndarray, cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Popularity ranks for every row, distinct within each user's list (``counts`` rows per user, in order)."""
    n_anime = len(cdf)
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    ranks = np.searchsorted(cdf, rng.random(len(owner)), side="right").astype(np.int64)
    pending = np.arange(len(owner))  # rows whose user may still hold a repeat
    for round_number in range(200):
        key = owner[pending] * n_anime + ranks[pending]
        order = np.argsort(key, kind="stable")
        repeat = np.zeros(len(pending), dtype=bool)
        repeat[order[1:]] = key[order][1:] == key[order][:-1]
        if not repeat.any():
            return ranks
        redraw = pending[repeat]
        # Popular draws first; a heavy user who already holds the head needs tail anime, so go uniform later.
        if round_number < 5:
            ranks[redraw] = np.searchsorted(cdf, rng.random(len(redraw)), side="right")
        else:
            ranks[redraw] = rng.integers(0, n_anime, len(redraw))
        # Only the users who just had a repeat can have a new one; their rows are the ones to check again.
        has_repeat = np.zeros(len(counts), dtype=bool)
        has_repeat[owner[redraw]] = True
        pending = pending[has_repeat[owner[pending]]]
    raise RuntimeError("could not draw distinct anime per user")


def rows_for_users(user_ids: np.ndarray, counts: np.ndarray, catalogue: tuple[np.ndarray, np.ndarray],
                   cdf: np.ndarray, rng: np.random.Generator) -> pa.Table:
    anime_ids, episodes = catalogue
    ranks = distinct_anime(counts, cdf, rng)
    n = len(ranks)
    rated = rng.random(n) >= UNRATED_SHARE
    rating = np.where(rated, rng.choice(np.arange(1, 11, dtype=np.int8), size=n, p=RATING_SHARES), 0).astype(np.int8)
    status = np.where(rated, rng.choice(STATUS_CODES, size=n, p=STATUS_SHARES_RATED),
                      rng.choice(STATUS_CODES, size=n, p=STATUS_SHARES_UNRATED)).astype(np.int8)
    total = episodes[ranks]
    watched = np.select([status == 2, status == 6], [total, 0], (rng.random(n) * total).astype(np.int32))
    return pa.table({"user_id": np.repeat(user_ids, counts), "anime_id": anime_ids[ranks], "rating": rating,
                     "watching_status": status, "watched_episodes": watched.astype(np.int32)})


def write_animelist(path: Path, rows: int, users: int | None = None, seed: int = 42,
                    chunk_rows: int = 4_000_000) -> dict:
    """Write ``rows`` rows to ``path``; return what was written."""
    rng = np.random.default_rng(seed)
    catalogue = anime_catalogue()
    n_anime = len(catalogue[0])
    users = users or max(1, round(FULL_USERS * rows / FULL_ROWS))
    weights = 1.0 / np.arange(1, n_anime + 1) ** ZIPF_EXPONENT
    cdf = np.cumsum(weights) / weights.sum()
    cdf[-1] = 1.0
    counts = list_lengths(rows, users, n_anime // 2, rng)
    # Real user ids have gaps; draw sorted ids from a slightly larger range.
    user_ids = np.sort(rng.choice(int(users * 1.08) + 1, size=users, replace=False)).astype(np.int64)
    ends = np.cumsum(counts)
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as sink:
        sink.write(HEADER.encode())
        first = 0
        while first < users:
            last = int(np.searchsorted(ends, ends[first] - counts[first] + chunk_rows, side="right"))
            last = max(last, first + 1)
            table = rows_for_users(user_ids[first:last], counts[first:last], catalogue, cdf, rng)
            pv.write_csv(table, sink, write_options=pv.WriteOptions(include_header=False))
            first = last
    return {"path": str(path), "rows": int(rows), "users": int(users), "anime": int(n_anime), "seed": seed,
            "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - started, 2)}


def make_raw_folder(folder: Path, rows: int, users: int | None = None, seed: int = 42) -> dict:
    """A raw folder processing can read: the synthetic animelist.csv plus the sample's real anime files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("anime.csv.zip", "anime_with_synopsis.csv.zip"):
        shutil.copy(SAMPLE_DATA_DIR / name, folder / name)
    return write_animelist(folder / "animelist.csv", rows, users, seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="raw folder to write (animelist.csv + the sample's anime files)")
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--users", type=int, default=None, help=f"default: {FULL_USERS:,} scaled to the rows")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    print(make_raw_folder(args.folder, args.rows, args.users, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
