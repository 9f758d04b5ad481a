"""Processing: raw MyAnimeList files -> encoded ratings, splits, id maps and the anime table.

Written atomically to ``artifacts/processed/``:

- ``interactions.parquet``: every kept interaction, once: ``user_id`` (MyAnimeList id), ``anime_index`` (catalogue
  row, int32), ``rating`` (int8; 1..10, 0 = watched or listed but not rated), ``split`` (``SPLIT_TRAIN``,
  ``SPLIT_VALIDATION``, ``SPLIT_TEST``: the per-user holdout) and ``held_out`` (the held-out sets a row is in: a
  seeded ``evaluation.newcomer_fraction`` of the users, newcomers, and ``new_anime_fraction`` of the rated anime,
  new anime). Processing encodes the rows; one call of src/data/splits.py (``split_rows``) decides both columns.
  The evaluation reads views of it; the served model is trained on all of it. The evaluation model's rows come
  first, shuffled with the seed.
- ``anime.parquet``: the catalogue's metadata, row j = anime index j (the evaluation model's anime first).
- ``user_ids.json``, ``anime_ids.json``: the evaluation model's users and anime (index -> MyAnimeList id).
- ``summary.json``: counts, the settings used, and the ledger: every row read, kept or dropped under a named reason
  (malformed, below the user threshold, unknown anime, duplicate); training checks the published model against it.

"Not rated" (0 in 2020 files, -1 in 2016 files) is never a score: such rows stay as known interactions
(never recommended back, never sampled as negatives) but are never rating targets and never held out.
Ratings are streamed in blocks with pyarrow and held as int32/int8 arrays, so the 109 M-row 2020
``animelist.csv`` fits comfortably in memory.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import time
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv

from config import paths_config
from config.settings import Settings
from src.data.content_features import fit_content_features
from src.data.files import save_content_features, write_ids
from src.data.ingestion import describe_raw_folder
from src.data.metadata import read_metadata
from src.data.splits import NEWCOMER, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VALIDATION, split_rows
from src.errors import UserError
from src.logger import get_logger
from utils.atomic import atomic_directory, write_json
from utils.common_functions import read_json

logger = get_logger(__name__)

INTERACTIONS_FILE = "interactions.parquet"
RATING_INPUT_COLUMNS = ["user_id", "anime_id", "rating"]
# Valid raw rating values per format; the first is the "not rated" marker where the format has one.
RATING_RANGES = {"animelist2020": (0, 10), "rating_complete2020": (1, 10), "rating2016": (-1, 10)}

# One block of validated ratings rows: (user_id int32, anime_id int32, rating int8).
Block = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Ratings:
    """Raw ratings as compact arrays; ``rating`` 0 means "not rated"."""

    user_id: np.ndarray
    anime_id: np.ndarray
    rating: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())


# ---------------------------------------------------------------------------------------------- reading
@contextmanager
def open_csv_source(path: Path) -> Iterator[Any]:
    """Yield something pyarrow can read: the path itself (plain, .gz) or the CSV inside a .zip."""
    if path.suffix != ".zip":
        yield str(path)
        return
    with zipfile.ZipFile(path) as archive:
        members = [name for name in archive.namelist() if name.endswith(".csv")]
        if not members:
            raise UserError(f"{path.name} holds no .csv file")
        with archive.open(members[0]) as handle:
            yield handle


def read_header(path: Path) -> list[str]:
    """The column names on the first line of a plain, .gz or .zip CSV."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
                first_line = handle.readline()
        elif path.suffix == ".zip":
            with open_csv_source(path) as handle:
                first_line = io.TextIOWrapper(handle, encoding="utf-8", newline="").readline()
        else:
            with path.open(encoding="utf-8", newline="") as handle:
                first_line = handle.readline()
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"cannot read {path.name}: {error}") from error
    return [name.strip() for name in next(csv.reader([first_line]), [])]


def read_ratings(path: Path, ratings_format: str, config: Settings | Mapping[str, Any]) -> Ratings:
    """Stream a ratings file into int32/int8 arrays, skipping and counting unreadable rows."""
    config = Settings.of(config)
    blocks, skipped = read_rating_blocks(path, ratings_format, config)
    return _concatenate(blocks, skipped)


def read_rating_blocks(path: Path, ratings_format: str,
                       config: Settings | Mapping[str, Any]) -> tuple[list[Block], dict[str, int]]:
    """Like ``read_ratings`` but leave the rows in their blocks, so a caller can filter them block by block
    without ever holding two full copies (the 109 M-row file is 1 GB as blocks)."""
    config = Settings.of(config)
    header = read_header(path)
    missing = [column for column in RATING_INPUT_COLUMNS if column not in header]
    if missing:
        raise UserError(f"{path.name} lacks column(s) {', '.join(missing)}; found {', '.join(header)}; "
                        f"expected at least {', '.join(RATING_INPUT_COLUMNS)}")
    block_size = int(config.data.block_size_bytes)
    try:
        blocks, skipped = _read_ratings_typed(path, ratings_format, block_size)
    except pa.ArrowInvalid as error:
        # A non-numeric or overflowing value: re-read robustly, converting value by value.
        logger.warning("%s has values that are not integers (%s); re-reading row by row to skip them",
                       path.name, str(error).splitlines()[0])
        blocks, skipped = _read_ratings_robust(path, ratings_format, block_size)
    rows_skipped = sum(skipped.values())
    total = sum(len(block[2]) for block in blocks) + rows_skipped
    if total == 0:
        raise UserError(f"{path.name} holds no ratings rows")
    share = rows_skipped / total
    if rows_skipped:
        logger.warning("skipped %d of %d rows of %s (%.3f%%): %s", rows_skipped, total, path.name,
                       100 * share, ", ".join(f"{count} {reason}" for reason, count in skipped.items()))
    limit = float(config.data.max_malformed_share)
    if share > limit:
        raise UserError(f"{rows_skipped} of {total} rows of {path.name} ({100 * share:.1f}%) are malformed, "
                        f"more than data.max_malformed_share ({100 * limit:g}%): check the file or raise the limit")
    return blocks, skipped


def _csv_reader(source: Any, block_size: int, column_type: pa.DataType, skipped: dict[str, int],
                column_names: list[str] | None = None) -> pv.CSVStreamingReader:
    """A streaming reader of the three rating columns; ``column_names`` for a source without a header line."""
    def skip_row(row: Any) -> str:
        skipped["rows with the wrong number of fields"] = skipped.get("rows with the wrong number of fields", 0) + 1
        return "skip"

    return pv.open_csv(
        source,
        read_options=pv.ReadOptions(block_size=block_size, column_names=column_names,
                                    use_threads=column_names is None),
        parse_options=pv.ParseOptions(invalid_row_handler=skip_row),
        convert_options=pv.ConvertOptions(include_columns=RATING_INPUT_COLUMNS,
                                          column_types={name: column_type for name in RATING_INPUT_COLUMNS}),
    )


def _read_ratings_typed(path: Path, ratings_format: str, block_size: int) -> tuple[list[Block], dict[str, int]]:
    ranges = _line_ranges(path, block_size)
    if len(ranges) < 2:
        with open_csv_source(path) as source:
            return _read_typed(source, ratings_format, block_size)
    # A big plain file is parsed as line-aligned byte ranges on parallel threads (pyarrow parses without the
    # GIL; one streaming reader keeps about one core busy), then its blocks are put back in file order.
    header = read_header(path)

    def read_range(byte_range: tuple[int, int]) -> tuple[list[Block], dict[str, int]]:
        with _ByteRange(path, *byte_range) as source:
            return _read_typed(source, ratings_format, block_size, header)

    with ThreadPoolExecutor(len(ranges)) as pool:
        parts = list(pool.map(read_range, ranges))
    skipped: dict[str, int] = {}
    for _, part_skipped in parts:
        for reason, count in part_skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
    return [block for part_blocks, _ in parts for block in part_blocks], skipped


def _read_typed(source: Any, ratings_format: str, block_size: int,
                column_names: list[str] | None = None) -> tuple[list[Block], dict[str, int]]:
    skipped: dict[str, int] = {}
    blocks = []
    # int32 straight from the parser: half the conversion work of int64; a value outside int32 (never a
    # valid id or rating) raises ArrowInvalid and takes the robust path, which skips it as out of range.
    for batch in _csv_reader(source, block_size, pa.int32(), skipped, column_names):
        blocks.append(_validate_block(*(batch.column(name).to_numpy(zero_copy_only=False)
                                        for name in RATING_INPUT_COLUMNS), ratings_format, skipped))
    return blocks, skipped


def _line_ranges(path: Path, block_size: int) -> list[tuple[int, int]]:
    """Byte ranges of a plain CSV's rows (header excluded), one per core but none under a block, each
    starting at a line start; [] for a compressed file, which can only be read from its beginning."""
    if path.suffix in (".gz", ".zip"):
        return []
    size = path.stat().st_size
    parts = max(1, min(os.cpu_count() or 1, size // max(block_size, 1)))
    with path.open("rb") as handle:
        handle.readline()
        starts = [handle.tell()]
        for part in range(1, parts):
            handle.seek(max(size * part // parts, starts[-1]))
            handle.readline()  # on to the start of the next line
            starts.append(handle.tell())
    starts.append(size)
    return [(start, end) for start, end in zip(starts, starts[1:], strict=False) if end > start]


class _ByteRange(io.RawIOBase):
    """A read-only file object over bytes [start, end) of a file."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(memoryview(buffer)[: self._left])
        self._left -= count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def _read_ratings_robust(path: Path, ratings_format: str, block_size: int) -> tuple[list[Block], dict[str, int]]:
    skipped: dict[str, int] = {}
    blocks = []
    with open_csv_source(path) as source:
        for batch in _csv_reader(source, block_size, pa.string(), skipped):
            columns = [pd.to_numeric(batch.column(name).to_pandas(), errors="coerce").to_numpy(dtype=np.float64)
                       for name in RATING_INPUT_COLUMNS]
            readable = np.logical_and.reduce([np.isfinite(c) & (c == np.round(c)) for c in columns])
            if (~readable).any():
                skipped["rows with a non-integer value"] = (skipped.get("rows with a non-integer value", 0)
                                                            + int((~readable).sum()))
            blocks.append(_validate_block(*(c[readable].astype(np.int64) for c in columns), ratings_format, skipped))
    return blocks, skipped


def _validate_block(user_id: np.ndarray, anime_id: np.ndarray, rating: np.ndarray, ratings_format: str,
                    skipped: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low, high = RATING_RANGES[ratings_format]
    int32_max = np.iinfo(np.int32).max
    valid = (user_id >= 0) & (anime_id >= 0) & (rating >= low) & (rating <= high)
    if user_id.dtype != np.int32 or anime_id.dtype != np.int32:  # int32 input cannot exceed the int32 maximum
        valid &= (user_id <= int32_max) & (anime_id <= int32_max)
    if not valid.all():
        skipped["rows with an id or rating out of range"] = (skipped.get("rows with an id or rating out of range", 0)
                                                             + int((~valid).sum()))
        user_id, anime_id, rating = user_id[valid], anime_id[valid], rating[valid]
    # "Not rated" (-1 in 2016, 0 in 2020) becomes 0; real scores are 1..10.
    return (user_id.astype(np.int32, copy=False), anime_id.astype(np.int32, copy=False),
            np.maximum(rating, 0).astype(np.int8))


def _concatenate(blocks: list[Block], skipped: dict[str, int]) -> Ratings:
    if not blocks:
        empty = np.empty(0, dtype=np.int32)
        return Ratings(empty, empty, empty.astype(np.int8), skipped)
    return Ratings(*(np.concatenate([block[i] for block in blocks]) for i in range(3)), skipped=skipped)


def read_anime_table(anime_path: Path, synopsis_path: Path | None) -> pd.DataFrame:
    """The anime metadata, one row per MyAnimeList id, columns as in ``METADATA_COLUMNS`` (src/data/metadata.py):
    the 2016, 2020 or 2023 format, repaired; ``read_metadata`` also returns the repair counts."""
    return read_metadata(anime_path, synopsis_path).table


# ------------------------------------------------------------------------------------------- processing
def _count_per_user(blocks: list[Block]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, rated rows) per user id, counted block by block."""
    size = max((int(user_id.max()) + 1 for user_id, _, _ in blocks if len(user_id)), default=1)
    rows, rated = np.zeros(size, np.int64), np.zeros(size, np.int64)
    for user_id, _, rating in blocks:
        rows += np.bincount(user_id, minlength=size)
        rated += np.bincount(user_id[rating > 0], minlength=size)
    return rows, rated


def _active_users(rated_per_user: np.ndarray, min_user_ratings: int) -> np.ndarray:
    """Boolean mask over user ids: at least ``min_user_ratings`` rated rows; raises UserError when none is."""
    kept_users = rated_per_user >= min_user_ratings
    if not kept_users.any():
        raise UserError(_no_users_message(rated_per_user, min_user_ratings))
    return kept_users


def _no_users_message(rated_per_user: np.ndarray, min_user_ratings: int) -> str:
    counts = rated_per_user[rated_per_user > 0]
    steps = [t for t in (10, 20, 50, 100, 200, 400, 1000) if t < min_user_ratings]
    spread = ", ".join(f"{int((counts >= t).sum())} have >= {t}" for t in steps)
    suggestion = max([t for t in steps if (counts >= t).sum() >= 10], default=max(int(counts.max(initial=0)), 1))
    return (f"no user has at least {min_user_ratings} rated anime: {len(counts)} users rated anything, "
            f"the most by one user is {int(counts.max(initial=0))}" + (f"; {spread}" if spread else "")
            + f"; try --min-user-ratings {suggestion}")


def _keep_rows(blocks: list[Block], kept_users: np.ndarray, known_anime: np.ndarray) -> tuple[Ratings, int]:
    """The rows of kept users whose anime has metadata, as one set of arrays; also the number of kept users'
    rows dropped for unknown anime. Empties ``blocks`` as it goes, so only the kept rows stay in memory."""
    masks, unknown_anime_rows = [], 0
    for user_id, anime_id, _ in blocks:
        active = kept_users[user_id]
        has_metadata = known_anime[anime_id]
        unknown_anime_rows += int(np.count_nonzero(active & ~has_metadata))
        masks.append(active & has_metadata)
    total = sum(int(np.count_nonzero(mask)) for mask in masks)
    kept = Ratings(np.empty(total, np.int32), np.empty(total, np.int32), np.empty(total, np.int8))
    start = 0
    while blocks:
        block, mask = blocks.pop(0), masks.pop(0)
        end = start + int(np.count_nonzero(mask))
        for column, values in zip((kept.user_id, kept.anime_id, kept.rating), block, strict=True):
            column[start:end] = values[mask]
        start = end
    return kept, unknown_anime_rows


def encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map ids to dense indices 0..n-1 in ascending id order; return (ids, indices)."""
    if len(values) and values.min() >= 0 and values.max() < 4 * len(values) + 2**20:
        # Ids this dense (MyAnimeList's are): a lookup table is linear time, several times faster than sorting.
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        position = np.cumsum(present, dtype=np.int32) - 1
        return np.flatnonzero(present).astype(np.int64), position[values]
    ids, indices = np.unique(values, return_inverse=True)
    return ids.astype(np.int64), indices.astype(np.int32)


def process(config: Settings | Mapping[str, Any], raw_dir: Path | None = None, destination: Path | None = None,
            min_user_ratings: int | None = None) -> dict[str, Any]:
    """Run the processing stage; return the summary it writes."""
    config = Settings.of(config)
    raw_dir = raw_dir or paths_config.raw_dir()
    destination = destination or paths_config.processed_dir()
    found = describe_raw_folder(raw_dir)
    processing = config.processing
    min_user_ratings = int(processing.min_user_ratings if min_user_ratings is None else min_user_ratings)
    if min_user_ratings < 1:
        raise UserError(f"min_user_ratings must be at least 1, not {min_user_ratings}")
    rng = np.random.default_rng(int(config.seed))

    metadata = read_metadata(found["anime"], found["synopsis"])
    anime_table = metadata.table
    logger.info("read %d anime from %s", len(anime_table), found["anime"].name)
    blocks, skipped = read_rating_blocks(found["ratings"], found["ratings_format"], config)
    rows_read = sum(len(block[2]) for block in blocks)
    rows_per_user, rated_per_user = _count_per_user(blocks)
    logger.info("read %d ratings rows (%d rated) from %d users in %s", rows_read, int(rated_per_user.sum()),
                int(np.count_nonzero(rows_per_user)), found["ratings"].name)

    # Activity is counted on the user's whole history, before rows without anime metadata are dropped.
    kept_users = _active_users(rated_per_user, min_user_ratings)
    max_anime_id = max((int(anime_id.max()) for _, anime_id, _ in blocks if len(anime_id)), default=0)
    known_anime = np.zeros(max(max_anime_id, int(anime_table["anime_id"].max())) + 1, dtype=bool)
    known_anime[anime_table["anime_id"].to_numpy()] = True
    ratings, unknown_anime_rows = _keep_rows(blocks, kept_users, known_anime)
    if unknown_anime_rows:
        logger.warning("dropping %d rows whose anime id is not in %s", unknown_anime_rows, found["anime"].name)
    if len(ratings.rating) == 0:
        raise UserError(f"no ratings row refers to an anime in {found['anime'].name}: "
                        "are the files from the same dataset?")

    user_ids, user_index = encode(ratings.user_id)
    rated_ids, anime_index = encode(ratings.anime_id)  # every anime on a kept user's list
    rating = ratings.rating
    del ratings
    user_index, anime_index, rating, duplicates = _drop_duplicate_pairs(user_index, anime_index, rating, len(rated_ids))
    evaluation = config.evaluation
    # Every held-out set (src/data/splits.py): the new anime and the newcomers, held out of the evaluation model
    # entirely for the cold-start evaluations, and the per-user holdout of the rest.
    splits = split_rows(user_index, anime_index, rating, len(user_ids), len(rated_ids),
                        holdout_fraction=float(evaluation.holdout_fraction),
                        validation_fraction=float(config.processing.validation_fraction),
                        newcomer_fraction=float(evaluation.newcomer_fraction),
                        new_anime_fraction=float(evaluation.new_anime_fraction), rng=rng)
    anime_ids = rated_ids[~splits.new_anime]  # the evaluation model's anime: embedding row j is anime_ids[j]
    catalogue = catalogue_order(anime_table, anime_ids)
    position = pd.Series(np.arange(len(catalogue)), index=catalogue["anime_id"].to_numpy())
    catalogue_index = position.loc[rated_ids].to_numpy(np.int32)[anime_index]  # the model's anime come first
    interactions = interaction_table(user_ids[user_index], catalogue_index, rating, splits.split, splits.held_out, rng)
    user_ids = user_ids[splits.model_users]  # the evaluation model's users
    ledger = {"read": rows_read + sum(skipped.values()), "kept": len(interactions),
              "dropped": {"malformed": sum(skipped.values()),
                          "below_user_threshold": int(rows_per_user[~kept_users].sum()),
                          "unknown_anime": unknown_anime_rows, "duplicate": duplicates},
              "malformed": skipped, "held_out": splits.counts}
    check_ledger(ledger)
    started = time.perf_counter()
    features = fit_content_features(catalogue, config.content)
    logger.info("content features for %d anime in %.1f s", len(catalogue), time.perf_counter() - started)

    in_model = interactions["held_out"].to_numpy() == 0
    split_counts = np.bincount(interactions["split"].to_numpy()[in_model], minlength=3)
    newcomer_rows = (interactions["held_out"].to_numpy() & NEWCOMER) > 0
    summary = {
        "source": (read_json(raw_dir / "source.json") if (raw_dir / "source.json").is_file()
                   else {"origin": str(raw_dir)}),
        "ratings_file": found["ratings"].name, "ratings_format": found["ratings_format"],
        "rows_read": rows_read, "rows_skipped": sum(skipped.values()), "skip_reasons": skipped,
        "rows_with_unknown_anime": unknown_anime_rows,
        "min_user_ratings": min_user_ratings, "users": len(user_ids), "anime": len(anime_ids),
        "catalogue": len(catalogue), "new_anime": int(splits.new_anime.sum()),
        "new_anime_interactions": ledger["held_out"]["new_anime"],
        "interactions": int(in_model.sum()),
        "rated": int(np.count_nonzero(interactions["rating"].to_numpy()[in_model])),
        "duplicates_dropped": duplicates,
        "train": int(split_counts[SPLIT_TRAIN]), "validation": int(split_counts[SPLIT_VALIDATION]),
        "test": int(split_counts[SPLIT_TEST]),
        "newcomers": len(np.unique(interactions["user_id"].to_numpy()[newcomer_rows])),
        "newcomer_interactions": int(newcomer_rows.sum()),
        "holdout_fraction": float(evaluation.holdout_fraction), "seed": int(config.seed),
        "metadata_repairs": metadata.repairs,
        "ledger": ledger,
    }
    with atomic_directory(destination) as staging:
        interactions.to_parquet(staging / INTERACTIONS_FILE, index=False)
        catalogue.to_parquet(staging / "anime.parquet", index=False)
        save_content_features(staging, features.matrix, features.story)
        write_ids(staging / "user_ids.json", user_ids)
        write_ids(staging / "anime_ids.json", anime_ids)
        write_json(staging / "summary.json", summary)
    logger.info("kept %d users with >= %d rated anime, %d anime, %d interactions (train %d, validation %d, test %d)",
                summary["users"], min_user_ratings, summary["anime"], summary["interactions"], summary["train"],
                summary["validation"], summary["test"])
    return summary


def interaction_table(user_id: np.ndarray, anime_index: np.ndarray, rating: np.ndarray, split: np.ndarray,
                      held_out: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The one table of every kept interaction (see the module docstring), its ``split`` and ``held_out`` as
    ``split_rows`` decided them (src/data/splits.py).

    The evaluation model's rows (in no held-out set) come first, shuffled with the seed so training batches mix
    users; the held-out rows follow in file order, set by set (``split`` train: the served model trains on them)."""
    model_rows = np.flatnonzero(held_out == 0)
    order = np.concatenate([model_rows[rng.permutation(len(model_rows))]]
                           + [np.flatnonzero(held_out == flags) for flags in np.unique(held_out[held_out > 0])])
    return pd.DataFrame({"user_id": user_id[order].astype(np.int64), "anime_index": anime_index[order],
                         "rating": rating[order], "split": split[order], "held_out": held_out[order]})


def check_ledger(ledger: dict[str, Any]) -> None:
    """Every row read is kept or dropped under a named reason: a difference is a bug in processing, and stops it."""
    accounted = ledger["kept"] + sum(ledger["dropped"].values())
    if accounted != ledger["read"]:
        raise UserError(f"processing lost track of {ledger['read'] - accounted} of the {ledger['read']} rows read "
                        f"(kept {ledger['kept']}, dropped {ledger['dropped']}): nothing was written")


def read_interactions(processed_dir: Path) -> pd.DataFrame:
    """The processed table of every kept interaction (``interaction_table``)."""
    return pd.read_parquet(processed_dir / INTERACTIONS_FILE)


def catalogue_order(anime_table: pd.DataFrame, model_anime_ids: np.ndarray) -> pd.DataFrame:
    """Every anime of the metadata: the model's anime first, in ``model_anime_ids`` order (row j = embedding row
    j), then the others (never rated by a kept user, or held out as new anime) by id."""
    table = anime_table.set_index("anime_id")
    rest = np.setdiff1d(table.index.to_numpy(), model_anime_ids)
    return table.loc[np.concatenate([model_anime_ids, np.sort(rest)])].reset_index()


def _drop_duplicate_pairs(user_index: np.ndarray, anime_index: np.ndarray, rating: np.ndarray,
                          n_anime: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Keep one row per (user, anime) pair: the last one in file order, as a later entry updates an earlier one."""
    key = user_index.astype(np.int64) * n_anime + anime_index
    sorted_key = np.sort(key)
    if not np.any(sorted_key[1:] == sorted_key[:-1]):  # the usual case, settled by a plain sort (no positions)
        return user_index, anime_index, rating, 0
    del sorted_key
    reversed_first = np.unique(key[::-1], return_index=True)[1]
    keep = np.sort(len(key) - 1 - reversed_first)
    duplicates = len(key) - len(keep)
    logger.warning("dropped %d duplicate (user, anime) rows, keeping the last of each", duplicates)
    return user_index[keep], anime_index[keep], rating[keep], duplicates
