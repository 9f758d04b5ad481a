"""Franchises of the whole 2020 catalogue: how many, the largest, the share of anime in one, the links by rule, the
build time.

    python -m bench.franchise_stats                  # with content features (fitted first, ~10 s), 5 timed builds
    python -m bench.franchise_stats --no-content     # titles, studios, Japanese names and synopses only
    python -m bench.franchise_stats --largest 40 --repeats 3

Run from the repository root. The table is ``read_metadata`` on the embedded sample's 2020 files (17,562 anime)
with the raw file's "Aired" text as ``aired``, the columns the server has plus start dates to the day. The build
time is the median of the runs of ``build_franchises`` in this process (wall and CPU seconds); the content features
are fitted once beforehand, as the server loads them, and not timed.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import time

import numpy as np
import pandas as pd

from bench.common import machine
from config.paths_config import SAMPLE_DATA_DIR
from src.data.metadata import read_metadata
from src.engine.franchises import Franchises, build_franchises, franchise_ids


def catalogue_table() -> pd.DataFrame:
    table = read_metadata(SAMPLE_DATA_DIR / "anime.csv.zip", SAMPLE_DATA_DIR / "anime_with_synopsis.csv.zip").table
    aired = pd.read_csv(SAMPLE_DATA_DIR / "anime.csv.zip", usecols=["MAL_ID", "Aired"])
    return table.merge(aired.rename(columns={"MAL_ID": "anime_id", "Aired": "aired"}), on="anime_id", how="left")


def content_features(table: pd.DataFrame) -> np.ndarray:
    from config.loader import load_config
    from src.data.content_features import fit_content_features

    return fit_content_features(table.drop(columns=["aired"]), load_config()["content"]).matrix


def timed_builds(table: pd.DataFrame, content: np.ndarray | None, repeats: int) -> tuple[Franchises, dict]:
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        franchises = build_franchises(table, content)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return franchises, {"wall_s_median": round(statistics.median(walls), 3), "wall_s_min": round(min(walls), 3),
                        "cpu_s_median": round(statistics.median(cpus), 3)}


def links_by_rule(table: pd.DataFrame, content: np.ndarray | None) -> collections.Counter:
    explain: list[tuple[int, int, str]] = []
    franchise_ids(table["name"].tolist(), table["english_name"].tolist(), table["synonyms"].tolist(),
                  table["studios"].tolist(), table["type"].tolist(), japanese_names=table["japanese_name"].tolist(),
                  synopses=table["synopsis"].tolist(), content=content, explain=explain)
    return collections.Counter(rule.split(":")[0] for _, _, rule in explain)


def report(table: pd.DataFrame, franchises: Franchises, largest: int) -> None:
    sizes = np.bincount(franchises.ids)
    in_multi = sizes[franchises.ids] > 1
    names, types = table["name"].to_numpy(), table["type"].to_numpy()
    print(f"anime {len(table):,}, franchises {franchises.count:,} ({(sizes > 1).sum():,} with 2 entries or more)")
    print(f"anime in a franchise of 2 or more: {in_multi.mean():.1%}; unrecommendable: "
          f"{franchises.unrecommendable.sum():,} ({(types == 'Music').sum():,} music videos, "
          f"{(franchises.unrecommendable & (types != 'Music')).sum():,} recaps)")
    print(f"\nlargest {largest} (size, first entry, most watched others):")
    members = table["members"].to_numpy()
    for franchise in np.argsort(-sizes, kind="stable")[:largest]:
        rows = np.flatnonzero(franchises.ids == franchise)
        first = franchises.first_entry[rows[0]]
        others = [names[row] for row in rows[np.argsort(-members[rows])] if row != first][:3]
        print(f"{sizes[franchise]:5d}  {names[first]}  |  {' ; '.join(others)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-content", action="store_true", help="build without content features")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--largest", type=int, default=25)
    arguments = parser.parse_args()
    table = catalogue_table()
    content = None if arguments.no_content else content_features(table)
    franchises, times = timed_builds(table, content, arguments.repeats)
    print(f"content features: {'no' if content is None else 'yes'}; build over {arguments.repeats} runs: {times}")
    print(f"machine: {machine()}")
    print(f"links that joined two franchises, by rule: {dict(links_by_rule(table, content))}")
    report(table, franchises, arguments.largest)


if __name__ == "__main__":
    main()
