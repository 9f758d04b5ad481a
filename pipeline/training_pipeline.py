"""Train the recommender: ingest -> process -> train -> evaluate, or one stage with --stage.

    python pipeline/training_pipeline.py                       # embedded sample, min 400 ratings per user
    python pipeline/training_pipeline.py --min-user-ratings 50 # more users from the sample
    python pipeline/training_pipeline.py --raw-dir ~/kaggle/anime-2020   # the full Kaggle data
"""
from __future__ import annotations

import argparse

from pipeline.cli import load_config, run_cli
from src.data_ingestion import ingest
from src.data_processing import process

STAGES = ("ingest", "process", "train", "evaluate")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="config file (default config/config.yaml)")
    parser.add_argument("--raw-dir", help="folder with the Kaggle CSVs (default: the embedded sample)")
    parser.add_argument("--min-user-ratings", type=int, help="keep users with at least this many rated anime")
    parser.add_argument("--epochs", type=int, help="maximum training epochs")
    parser.add_argument("--stage", choices=[*STAGES, "all"], default="all", help="run one stage only (default: all)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    config = load_config(args.config)
    stages = STAGES if args.stage == "all" else (args.stage,)
    if "ingest" in stages:
        ingest(config, raw_dir=args.raw_dir)
    if "process" in stages:
        process(config, min_user_ratings=args.min_user_ratings)
    if "train" in stages:
        from src.model_training import train  # imports TensorFlow: only when training, so errors above come fast

        train(config, epochs=args.epochs)
    if "evaluate" in stages:
        evaluate(config)


def evaluate(config: dict) -> None:
    """Score the new model on its held-out users next to the baselines (artifacts/reports/)."""
    from src.logger import get_logger
    from src.model_evaluation import evaluate_and_track

    if float(config["evaluation"]["holdout_fraction"]) <= 0:
        get_logger("training_pipeline").info("evaluation.holdout_fraction is 0: no held-out users, no evaluation")
        return
    evaluate_and_track(config)


def run() -> None:
    """Console entry point."""
    run_cli(main)


if __name__ == "__main__":
    run()
