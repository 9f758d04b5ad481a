"""Tune the NCF's own settings (``tuning.grid``) on a validation carve of the training rows (never the test set).

    python pipeline/tuning_pipeline.py     # needs artifacts/processed/ (run the training pipeline first)

Writes artifacts/reports/tuning.json and tuning.md; copy the best values into config/config.yaml.
"""
from __future__ import annotations

import argparse

from config import paths_config
from pipeline.cli import load_config, run_cli
from utils.atomic import write_json


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="config file (default config/config.yaml)")
    return parser.parse_args()


def main() -> None:
    config = load_config(parse_args().config)
    from src.training.train import prepare_training_data  # imports TensorFlow
    from src.tuning.hybrid import tune

    result = tune(config, prepare_training_data(config, paths_config.processed_dir()))
    reports = paths_config.reports_dir()
    write_json(reports / "tuning.json", result)
    lines = ["| setting | ncf Recall@k (validation carve) |", "|---|---|"]
    lines += [f"| {trial['setting']} | {trial['recall']:.4f} |" for trial in result["trials"]]
    lines += ["", "Best: " + ", ".join(f"`{key}: {value}`" for key, value in result["best"].items())]
    (reports / "tuning.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def run() -> None:
    """Console entry point."""
    run_cli(main)


if __name__ == "__main__":
    run()
