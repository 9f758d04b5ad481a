"""How many users the evaluation needs: the stability of Recall@k and NDCG@k over seeded user samples
(``evaluation.max_users``), measured on an evaluated artifacts root.

    python -m bench.eval_sampling --artifacts ROOT       # a root the pipeline's train stage has written

Each method (the engine's hybrid and each of its components) ranks the catalogue for every held-out user
once, as the evaluation does (``Recommender.rank_users``, the serving code); that gives each user's Recall@k and
NDCG@k. A sample of ``max_users`` is then just a mean over some of them: for each size, 50 seeds of
``held_out_users(test, max_users, seed)`` (the evaluation's own sampler) give the spread of the sampled figure
around the all-user figure. Reported per method and size: the largest deviation, the share of seeds within
+-0.005, and the standard error expected at full size (sd / sqrt(n), the finite-population correction left
out: at 300 k users a sample of a few thousand is a small share). The recommended ``max_users`` is the smallest
n whose 95% interval (1.96 standard errors) of every method's Recall@k is within +-0.005 on the full file. Also
reported: the seconds each method takes per 1,000 users, to size the evaluation's time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import PROJECT_ROOT, save_json

TOLERANCE = 0.005
SIZES = (250, 500, 1000, 2000, 3000, 5000, 10000)
SEEDS = 50


def per_user_metrics(root: Path, smoke: bool = False) -> dict[str, Any]:
    """Every held-out user's Recall@k and NDCG@k for each method, and the seconds each method took."""
    from config import paths_config
    from config.loader import load_config
    from src.data.splits import held_out_users, split_interactions
    from src.evaluation.metrics import batch_metrics
    from src.evaluation.protocol import recommend_top_k
    from src.evaluation.runner import engine_for
    from src.models.ease import interaction_matrix
    from src.store.artifacts import load_model_artifacts

    config = load_config()
    k, batch_size = int(config["evaluation"]["k"]), int(config["evaluation"]["batch_size"])
    artifacts = load_model_artifacts(paths_config.evaluation_model_dir(root))
    _known, test = split_interactions(artifacts.user_ratings)
    n_users, n_anime = len(artifacts.user_ids), len(artifacts.anime_ids)
    engine = engine_for(artifacts, config)
    users = held_out_users(test)
    width = max(int(getattr(engine, "n_anime", n_anime)), n_anime)  # rankings may span a catalogue beyond the model's
    relevant = interaction_matrix(test, n_users, width)[users]
    n_relevant = np.diff(relevant.indptr)
    names = ["hybrid", *[name for name in engine.hybrid.scorers if name != "hybrid"]]
    rankers = {method: (lambda rows, k, method=method: engine.rank_users(rows, k, method)) for method in names}
    results: dict[str, Any] = {"k": k, "users": len(users), "methods": {}}
    dense_relevant = relevant.toarray() > 0
    for method, rank in rankers.items():
        started = time.perf_counter()
        lists = recommend_top_k(rank, users, k, batch_size)
        seconds = time.perf_counter() - started
        hits = np.take_along_axis(dense_relevant, np.maximum(lists, 0), axis=1) & (lists >= 0)
        metrics = batch_metrics(hits, n_relevant, k)
        results["methods"][method] = {"recall": metrics["recall"], "ndcg": metrics["ndcg"],
                                      "seconds_per_1000_users": round(1000 * seconds / len(users), 2)}
    results["user_index"] = users
    return results


def stability(per_user: dict[str, Any], sizes: tuple[int, ...] = SIZES, seeds: int = SEEDS) -> dict[str, Any]:
    """Per method and size: how far seeded samples' means fall from the all-user mean."""
    import pandas as pd

    from src.data.splits import held_out_users

    users = np.asarray(per_user["user_index"])
    position = {int(user): index for index, user in enumerate(users)}
    frame = pd.DataFrame({"user_index": users})
    report: dict[str, Any] = {"users": len(users), "tolerance": TOLERANCE, "seeds": seeds, "methods": {}}
    for method, values in per_user["methods"].items():
        entry: dict[str, Any] = {"seconds_per_1000_users": values["seconds_per_1000_users"], "sizes": {}}
        for metric in ("recall", "ndcg"):
            scores = np.asarray(values[metric])
            entry[metric] = {"all_users": round(float(scores.mean()), 4), "sd": round(float(scores.std(ddof=1)), 4)}
        for size in sizes:
            if size >= len(users):
                continue
            figures = {}
            for metric in ("recall", "ndcg"):
                scores, full = np.asarray(values[metric]), float(np.asarray(values[metric]).mean())
                means = np.array([scores[[position[int(u)] for u in held_out_users(frame, size, seed)]].mean()
                                  for seed in range(seeds)])
                deviation = np.abs(means - full)
                figures[metric] = {"max_deviation": round(float(deviation.max()), 4),
                                   "sd_of_sample_means": round(float(means.std(ddof=1)), 4),
                                   "share_within_tolerance": round(float((deviation <= TOLERANCE).mean()), 3),
                                   "expected_se_full_size": round(float(scores.std(ddof=1) / np.sqrt(size)), 4)}
            entry["sizes"][str(size)] = figures
        report["methods"][method] = entry
    sds = [entry["recall"]["sd"] for entry in report["methods"].values()]
    needed = int(np.ceil((1.96 * max(sds) / TOLERANCE) ** 2)) if sds else None
    report["recommended_max_users"] = needed
    report["rule"] = ("smallest n with 1.96 * sd / sqrt(n) <= 0.005 for every method's per-user Recall@k "
                      "(95% of seeds within +-0.005 of the all-user figure on a large population)")
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    methods = report["methods"]
    sizes = sorted({int(size) for entry in methods.values() for size in entry["sizes"]})
    lines = [f"Evaluation sample stability ({report['users']:,} held-out users, {report['seeds']} seeds per size; "
             f"Recall@k: all users / sd per user / largest deviation of a sample's mean at "
             f"{', '.join(map(str, sizes))} users / seconds per 1,000 users):", "",
             "| method | all users | sd | " + " | ".join(f"n={size}" for size in sizes) + " | s / 1,000 users |",
             "|---|---|---|" + "---|" * len(sizes) + "---|"]
    for method, entry in methods.items():
        cells = [f"{entry['sizes'][str(size)]['recall']['max_deviation']:.4f} "
                 f"({entry['sizes'][str(size)]['recall']['share_within_tolerance']:.0%})"
                 if str(size) in entry["sizes"] else "" for size in sizes]
        lines.append(f"| {method} | {entry['recall']['all_users']:.4f} | {entry['recall']['sd']:.3f} | "
                     + " | ".join(cells) + f" | {entry['seconds_per_1000_users']:.1f} |")
    lines += ["", f"(in brackets: share of seeds within +-{report['tolerance']}). Recommended "
              f"`evaluation.max_users`: **{report['recommended_max_users']}** ({report['rule']})."]
    return lines


def measure_in_child(root: Path, scratch: Path, smoke: bool = False) -> dict[str, Any]:
    output = scratch / "sampling.json"
    env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "bench.eval_sampling", "--artifacts", str(root),
                           "--output", str(output), *(["--smoke"] if smoke else [])],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(f"evaluation sampling failed:\n{done.stderr[-3000:]}")
    return json.loads(output.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="an artifacts root with an evaluation model")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    per_user = per_user_metrics(args.artifacts, args.smoke)
    sizes = (5, 10, 20) if args.smoke else SIZES
    report = stability(per_user, sizes, seeds=5 if args.smoke else SEEDS)
    if args.output:
        save_json(args.output, report)
    print("\n".join(summary_lines(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
