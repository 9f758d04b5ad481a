"""Evaluate the trained model on its held-out users against baselines; write artifacts/reports/.

    python pipeline/evaluation_pipeline.py            # metrics.json, evaluation.md, chart.png
    python pipeline/evaluation_pipeline.py --quick    # skip retraining the original objective for comparison
"""
from __future__ import annotations

import argparse

from config import paths_config
from pipeline.cli import load_config, run_cli


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="config file (default config/config.yaml)")
    parser.add_argument("--quick", action="store_true", help="do not train the original-objective model for comparison")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    config = load_config(args.config)
    from src.evaluation.runner import evaluate_and_track

    report = evaluate_and_track(config, compare_original=False if args.quick else None)
    print((paths_config.reports_dir() / "evaluation.md").read_text(encoding="utf-8"))
    best = max(report["methods"], key=lambda method: report["methods"][method]["recall"])
    print(f"best Recall@{report['meta']['k']}: {best} {report['methods'][best]['recall']:.4f}")


def run() -> None:
    """Console entry point."""
    run_cli(main)


if __name__ == "__main__":
    run()
