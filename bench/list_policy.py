"""What an imported list's scores and statuses should count as (config/config.yaml ``serving.list_*``), chosen on a
validation carve of the newcomers' lists, never on their test part.

    python -m bench.list_policy                      # artifacts/ (the evaluation model and the processed data)
    python -m bench.list_policy --root /tmp/a50

The evaluation's imported-list question (src/evaluation/newcomers.py, ``import_split``) holds a seeded share of each
newcomer's rated anime out as test. Here only the rest, their list, is used: a second seeded share of its rated
anime is held out as validation, and what remains is sent as the list. Each policy ranks those lists with the
evaluation model (trained without the newcomers) exactly as ``Recommender.rank_lists`` serves an import; Recall@10
of the validation anime, paired with the configured policy per person (mean difference and standard error).

The 2016 data has scores and watched-but-unrated rows, but no statuses: a low score stands in for "dropped" (the
policy's ``min_taste_score``: entries scored below it only exclude), an unrated row for a title watched without a
score (``unscored_is_taste``). Plan-to-watch cannot be measured here: it is intent, kept out of taste by design.
Writes bench/results/list_policy.json.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import RESULTS_DIR, machine, now, save_json
from config import paths_config
from config.loader import load_config
from src.data.processing import read_interactions
from src.data.splits import SPLIT_TEST, assign_splits, newcomer_view
from src.engine.personal_lists import ListEntry, ListPolicy
from src.engine.recommender import Recommender
from src.evaluation.metrics import paired_difference
from src.evaluation.newcomers import import_split
from src.evaluation.protocol import evaluate_methods, settings_from_config
from src.evaluation.runner import engine_for
from src.store.artifacts import load_model_artifacts

RESULTS = RESULTS_DIR / "list_policy.json"
# (name, unscored_is_taste, min_taste_score): the configured policy first, then one change at a time
POLICIES = [("unscored count, scores below 4 only exclude (configured)", True, 4),
            ("unscored rows only exclude", False, 4),
            ("every score counts", True, 1),
            ("scores below 6 only exclude", True, 6),
            ("scores below 8 only exclude", True, 8)]


def validation_carve(lists: list[list[ListEntry]], fraction: float,
                     seed: int) -> tuple[list[list[ListEntry]], pd.DataFrame, pd.DataFrame]:
    """(each kept person's list without their validation anime, those lists as rows, the validation rows): a
    seeded ``fraction`` of each list's rated entries; people left with none to find are dropped."""
    person = np.repeat(np.arange(len(lists)), [len(entries) for entries in lists])
    flat = [entry for entries in lists for entry in entries]
    rating = np.array([entry.score for entry in flat])
    held = assign_splits(person, rating, fraction, 0.0, np.random.default_rng(seed)) == SPLIT_TEST
    kept = np.flatnonzero(np.bincount(person[held], minlength=len(lists)) > 0)
    number = np.full(len(lists), -1, np.int64)
    number[kept] = np.arange(len(kept))
    carved: list[list[ListEntry]] = [[] for _ in kept]
    list_rows, validation_rows = [], []
    for entry, who, is_held in zip(flat, number[person], held, strict=True):
        if who < 0:
            continue
        (validation_rows if is_held else list_rows).append((who, entry.anime_id, entry.score))
        if not is_held:
            carved[who].append(entry)
    columns = ["user_index", "anime_index", "rating"]
    return carved, pd.DataFrame(list_rows, columns=columns), pd.DataFrame(validation_rows, columns=columns)


def measure(root: Path) -> dict[str, Any]:
    config = load_config()
    evaluation = config["evaluation"]
    engine = engine_for(load_model_artifacts(paths_config.evaluation_model_dir(root)), config)
    split = import_split(newcomer_view(read_interactions(paths_config.processed_dir(root))),
                         float(evaluation["holdout_fraction"]), int(evaluation["newcomer_favourites"]),
                         int(config["seed"]))
    # the test part (split.relevant_rows) is never read below: only the lists are carved
    lists, list_rows, validation = validation_carve(split.lists, float(evaluation["holdout_fraction"]),
                                                    int(config["seed"]) + 1)
    rankers = {}
    for name, unscored, min_score in POLICIES:
        policy_engine = _with_policy(engine, unscored, min_score)
        rankers[name] = lambda people, k, served=policy_engine: served.rank_lists([lists[p] for p in people], k)
    settings = dataclasses.replace(settings_from_config(config), max_users=None)
    result = evaluate_methods(rankers, list_rows, validation[["user_index", "anime_index"]], engine.n_anime,
                              settings, franchise=engine.catalogue.franchise)
    configured = POLICIES[0][0]
    rows = {}
    for name, *_ in POLICIES:
        difference, error = paired_difference(result.recalls[name], result.recalls[configured])
        metrics = result.metrics[name]
        rows[name] = {"recall": round(metrics["recall"], 4), "ndcg": round(metrics["ndcg"], 4),
                      "versus_configured": round(difference, 4), "standard_error": round(error, 4)}
    return {"people": len(lists), "validation_anime": len(validation), "k": settings.k, "policies": rows}


def _with_policy(engine: Recommender, unscored_is_taste: bool, min_taste_score: int) -> Recommender:
    served = copy.copy(engine)  # shares every array; only the list policy differs
    served.list_policy = ListPolicy(engine.list_policy.taste_statuses, unscored_is_taste, min_taste_score)
    return served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="artifacts root (default: artifacts/)")
    args = parser.parse_args(argv)
    root = args.root or paths_config.artifacts_root()
    results = measure(root)
    print(f"{results['people']} people, {results['validation_anime']} validation anime (Recall@{results['k']}):")
    print("| policy | Recall | NDCG | vs configured |\n|---|---|---|---|")
    for name, row in results["policies"].items():
        print(f"| {name} | {row['recall']:.4f} | {row['ndcg']:.4f} | "
              f"{row['versus_configured']:+.4f} ± {row['standard_error']:.4f} |")
    save_json(RESULTS, {"measured_at": now(), "machine": machine(), "root": str(root), **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
