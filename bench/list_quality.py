"""What the lists show, with issue 28's list rules and without them, on a published model.

    python -m bench.list_quality                           # artifacts/model
    python -m bench.list_quality --model /tmp/a50/model --anime 500

For the similar anime of the ``--anime`` most watched rated titles, and for every known user's recommendations
(top 10 each), counts per list: the entries beyond the first of their franchise (FranchiseRepeats@10, as the
evaluation reports it), the lists holding any such repeat, the entries of a franchise the person has not seen that
are not its first entry ("Fire Force Season 2 before Fire Force"), and the adult, unaired, recap and music titles.
"Without the rules" is the same engine with ``franchise_rules`` off and nothing masked. Writes
bench/results/list_quality.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS_DIR, machine, now, save_json
from config.loader import load_config
from config.paths_config import model_dir
from config.settings import ServingConfig
from src.engine.diversity import FranchiseRules
from src.engine.recommender import Recommender

RESULTS = RESULTS_DIR / "list_quality.json"


def engines(folder: Path) -> dict[str, Recommender]:
    """The served engine, and the same one with no list rules (every anime may be listed, no franchise rules)."""
    serving = ServingConfig.from_config(load_config())
    with_rules = Recommender.from_folder(folder, serving)
    without = Recommender.from_folder(folder, dataclasses.replace(serving, franchise_rules=False))
    everything = np.ones(without.n_anime, dtype=bool)
    without.catalogue._listable = {False: everything, True: everything}  # the lists before issue 28: no masks
    return {"with the rules": with_rules, "without": without}


def list_figures(lists: list[np.ndarray], seen: list[set[int]], engine: Recommender,
                 rules: FranchiseRules) -> dict[str, Any]:
    """Per-list counts (module docstring), averaged, over lists of catalogue rows."""
    catalogue = engine.catalogue
    repeats = [len(rows) - len(np.unique(rules.franchise[rows])) for rows in lists]
    later = [sum(1 for row in rows if rules.franchise[row] not in seen_here and rules.first_entry[row] != row)
             for rows, seen_here in zip(lists, seen, strict=True)]
    flagged = {name: [int(mask[rows].sum()) for rows in lists] for name, mask in (
        ("adult", catalogue.adult), ("unaired", catalogue.unaired), ("recap_or_music", catalogue.unrecommendable))}
    return {"lists": len(lists), "franchise_repeats_per_list": round(float(np.mean(repeats)), 3),
            "lists_with_a_repeat": round(float(np.mean(np.array(repeats) > 0)), 3),
            "later_entries_of_unseen_franchises_per_list": round(float(np.mean(later)), 3),
            **{f"{name}_per_list": round(float(np.mean(counts)), 3) for name, counts in flagged.items()}}


def measure(folder: Path, anime: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    served = engines(folder)
    rules = served["with the rules"].catalogue.franchise_rules
    reference = served["with the rules"]
    rated = np.argsort(-reference.catalogue.members[:reference.n_model_anime], kind="stable")[:anime]
    titles = [int(reference.anime_ids[row]) for row in rated]
    users = [int(user) for user in reference.user_ids]
    for name, engine in served.items():
        similar = [np.array([engine.anime_index(item["anime_id"]) for item in engine.similar_anime(title, 10)])
                   for title in titles]
        similar_seen = [{int(rules.franchise[engine.anime_index(title)])} for title in titles]
        recommended, user_seen = [], []
        for user in users:
            recommended.append(np.array([engine.anime_index(item["anime_id"])
                                         for item in engine.recommend_for_user(user, 10)]))
            known = engine.interactions.profiles([engine.user_index(user)]).known.indices
            user_seen.append(rules.seen(known))
        results[name] = {"similar_anime": list_figures(similar, similar_seen, engine, rules),
                         "known_users": list_figures(recommended, user_seen, engine, rules)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="a published model folder (default artifacts/model)")
    parser.add_argument("--anime", type=int, default=500, help="similar anime of this many most watched titles")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    folder = args.model or model_dir()
    report = {"model": str(folder), "results": measure(folder, args.anime), "machine": machine(), "measured_at": now()}
    for name, sections in report["results"].items():
        for section, figures in sections.items():
            print(f"{name:<16}{section:<15}" + ", ".join(f"{key} {value}" for key, value in figures.items()))
    print(f"wrote {save_json(args.output, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
