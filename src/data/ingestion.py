"""Ingestion: put the raw MyAnimeList files into ``artifacts/raw/``.

Sources, in order of precedence: a local folder (``--raw-dir``), a Google Cloud Storage bucket
(``data.source: gcs``), or the embedded real sample in ``data/sample/`` (the default).

A raw folder holds the anime metadata, and one ratings file; each may be plain, ``.gz`` or ``.zip``. Metadata:

- ``anime-dataset-2023.csv`` (Kaggle "Anime Dataset 2023"; synopses and image URLs in the same file), or
- ``anime.csv`` (Kaggle "Anime Recommendation Database 2020", or the 2016 dataset), optionally with
  ``anime_with_synopsis.csv`` beside it.

When both are there the 2023 file wins and the 2020 files are left out: it is newer (about 24,900 anime against
17,562), its synopses and English names are intact (the 2020 ones need repairs, see src/data/metadata.py) and it has
image URLs. Anime deleted from MyAnimeList since 2020 are then unknown, and their ratings rows are dropped and
counted (``rows_with_unknown_anime``); remove the 2023 file to use the 2020 metadata instead.

Ratings files, first match wins:

| file | columns | "not rated" |
|---|---|---|
| ``animelist.csv`` (2020) | user_id, anime_id, rating, watching_status, watched_episodes | rating 0 |
| ``rating_complete.csv`` (2020) | user_id, anime_id, rating | (all rated) |
| ``rating.csv`` (2016) | user_id, anime_id, rating | rating -1 |
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config import paths_config
from config.settings import Settings
from src.errors import UserError
from src.logger import get_logger
from utils.atomic import atomic_directory, write_json

logger = get_logger(__name__)

COMPRESSION_SUFFIXES = ("", ".gz", ".zip")
ANIME_FILE = "anime.csv"
ANIME_2023_FILE = "anime-dataset-2023.csv"  # preferred over anime.csv when both are there
SYNOPSIS_FILE = "anime_with_synopsis.csv"
RATINGS_FILES = {  # file name -> ratings format
    "animelist.csv": "animelist2020",
    "rating_complete.csv": "rating_complete2020",
    "rating.csv": "rating2016",
}


def find_file(folder: Path, name: str) -> Path | None:
    """Return ``folder/name`` in plain, .gz or .zip form, whichever exists first."""
    for suffix in COMPRESSION_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def find_ratings_file(folder: Path) -> tuple[Path, str]:
    """Return the ratings file in ``folder`` and its format name."""
    for name, ratings_format in RATINGS_FILES.items():
        found = find_file(folder, name)
        if found is not None:
            return found, ratings_format
    raise UserError(
        f"no ratings file in {folder}: expected one of {', '.join(RATINGS_FILES)} (plain, .gz or .zip) "
        "from the Kaggle 'Anime Recommendation Database 2020' or the 2016 'Anime Recommendations Database'"
    )


def describe_raw_folder(folder: Path) -> dict[str, Any]:
    """Check a raw folder has what processing needs; return the files found."""
    if not folder.is_dir():
        raise UserError(f"raw data folder {folder} does not exist: pass an existing folder with --raw-dir")
    anime_2023 = find_file(folder, ANIME_2023_FILE)
    anime = anime_2023 or find_file(folder, ANIME_FILE)
    if anime is None:
        raise UserError(f"no {ANIME_FILE} or {ANIME_2023_FILE} (plain, .gz or .zip) in {folder}: download "
                        "anime.csv from the Kaggle 'Anime Recommendation Database 2020' or anime-dataset-2023.csv "
                        "from the Kaggle 'Anime Dataset 2023' and put it there")
    ratings, ratings_format = find_ratings_file(folder)
    # The 2023 file carries its own synopses; the 2020 synopsis file belongs with anime.csv only.
    synopsis = None if anime_2023 else find_file(folder, SYNOPSIS_FILE)
    if anime_2023 and find_file(folder, ANIME_FILE):
        logger.info("%s and %s are both in %s: using %s", anime_2023.name, ANIME_FILE, folder, anime_2023.name)
    return {"anime": anime, "synopsis": synopsis, "ratings": ratings, "ratings_format": ratings_format}


def ingest(config: Settings | Mapping[str, Any],
           raw_dir: str | Path | None = None, destination: Path | None = None) -> Path:
    """Copy the raw files into ``artifacts/raw/`` (atomically) and return that folder."""
    config = Settings.of(config)
    destination = destination or paths_config.raw_dir()
    if raw_dir is not None:
        source_folder, origin = Path(raw_dir), f"local folder {raw_dir}"
    elif config.data.source == "gcs":
        return _ingest_from_gcs(config, destination)
    elif config.data.source == "sample":
        source_folder, origin = paths_config.PROJECT_ROOT / config.data.sample_dir, "embedded sample"
    else:
        raise UserError(f"data.source must be 'sample' or 'gcs', not {config.data.source!r}")
    found = describe_raw_folder(source_folder)
    files = [path for path in (found["anime"], found["synopsis"], found["ratings"]) if path is not None]
    logger.info("ingesting %s: %s", origin, ", ".join(path.name for path in files))
    with atomic_directory(destination) as staging:
        for path in files:
            _link_or_copy(path, staging / path.name)
        write_json(staging / "source.json", {"origin": origin, "ratings_format": found["ratings_format"],
                                             "files": sorted(p.name for p in staging.iterdir())})
    logger.info("raw files ready in %s", destination)
    return destination


def _link_or_copy(source: Path, target: Path) -> None:
    # A hard link is instant for the 1.9 GB animelist.csv; fall back to a copy across file systems.
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _ingest_from_gcs(config: Settings, destination: Path) -> Path:
    gcs = config.data.gcs
    if not gcs.bucket_name:
        raise UserError("data.source is 'gcs' but data.gcs.bucket_name is empty in config/config.yaml")
    try:
        from google.cloud import storage  # optional extra: pip install -e .[gcs]
    except ImportError as error:
        raise UserError("reading from Google Cloud Storage needs the gcs extra: pip install -e '.[gcs]'") from error
    bucket = storage.Client().bucket(gcs.bucket_name)
    with atomic_directory(destination) as staging:
        for name in gcs.files:
            blob_name = f"{gcs.prefix.rstrip('/')}/{name}".lstrip("/")
            logger.info("downloading gs://%s/%s", gcs.bucket_name, blob_name)
            bucket.blob(blob_name).download_to_filename(str(staging / name))
        found = describe_raw_folder(staging)
        write_json(staging / "source.json", {"origin": f"gs://{gcs.bucket_name}/{gcs.prefix}",
                                             "ratings_format": found["ratings_format"],
                                             "files": sorted(p.name for p in staging.iterdir())})
    return destination
