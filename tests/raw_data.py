"""Builders for small hand-made raw-data folders in the real Kaggle formats."""
from __future__ import annotations

from pathlib import Path

ANIME_2020_HEADER = "MAL_ID,Name,Score,Genders,English name,Japanese name,Type,Episodes,Aired,Premiered,Members"


def write_anime_2020(folder: Path, count: int = 10, genre_column: str = "Genders") -> Path:
    """anime.csv with ids 1..count; even ids are Action, odd ids Romance; id 3 has no English name."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [ANIME_2020_HEADER.replace("Genders", genre_column)]
    for anime_id in range(1, count + 1):
        genres = '"Action, Comedy"' if anime_id % 2 == 0 else "Romance"
        english = "Unknown" if anime_id == 3 else f"Show {anime_id}"
        lines.append(f"{anime_id},Anime {anime_id},{6 + anime_id / 10:.2f},{genres},{english},x,TV,12,"
                     f'"Apr 3, 20{anime_id:02d}",Spring 20{anime_id:02d},{1000 * anime_id}')
    path = folder / "anime.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_ratings(folder: Path, rows: list[tuple], name: str = "rating.csv",
                  header: str = "user_id,anime_id,rating") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *(",".join(str(v) for v in row) for row in rows)]) + "\n", encoding="utf-8")
    return path
