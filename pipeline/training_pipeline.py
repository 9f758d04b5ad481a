"""Train the recommender: ingest -> process -> train -> evaluate -> refit, or one stage with --stage.

The train stage chooses the hybrid's settings on a validation carve and trains the evaluation model on the
training split; evaluate measures it against tuned baselines; refit trains the served model on every rating with
the same settings and publishes it (evaluation.refit: false publishes the evaluation model instead).

    python pipeline/training_pipeline.py                       # embedded sample, min 400 ratings per user
    python pipeline/training_pipeline.py --min-user-ratings 50 # more users from the sample
    python pipeline/training_pipeline.py --raw-dir ~/kaggle/anime-2020   # the full Kaggle data
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from config import paths_config
from config.settings import Settings
from pipeline.cli import load_config, run_cli
from src.data.ingestion import ingest
from src.data.processing import process
from src.logger import get_logger

logger = get_logger(__name__)

STAGES = ("ingest", "process", "train", "evaluate", "refit")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="config file (default config/config.yaml)")
    parser.add_argument("--raw-dir", help="folder with the Kaggle CSVs (default: the embedded sample)")
    parser.add_argument("--min-user-ratings", type=int, help="keep users with at least this many rated anime")
    parser.add_argument("--epochs", type=int, help="maximum training epochs")
    parser.add_argument("--stage", choices=[*STAGES, "all"], default="all", help="run one stage only (default: all)")
    parser.add_argument("--compare-original", action="store_true",
                        help="also train the original design's NCF for the report "
                             "(evaluation.compare_original_objective)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    config = load_config(args.config)
    stages = STAGES if args.stage == "all" else (args.stage,)
    if "ingest" in stages:
        ingest(config, raw_dir=args.raw_dir)
    if "process" in stages:
        process(config, min_user_ratings=args.min_user_ratings)
    holdout = float(config.evaluation.holdout_fraction) > 0
    if "train" in stages:
        train_stage(config, args.epochs, evaluated=holdout)
    if "evaluate" in stages:
        if holdout:
            from src.evaluation.runner import evaluate_and_track

            evaluate_and_track(config, compare_original=True if args.compare_original else None)
        else:
            logger.info("evaluation.holdout_fraction is 0: no held-out users, no evaluation")
    if "refit" in stages and holdout:
        from src.training.refit import publish_evaluation_model, refit

        if config.evaluation.refit:
            refit(config, epochs=args.epochs)
        else:
            publish_evaluation_model(config)


def train_stage(config: Settings | Mapping[str, Any], epochs: int | None, evaluated: bool) -> None:
    """Choose the hybrid's settings on the validation carve, then train: the evaluation model when there is a
    held-out test set (refit publishes the served one), otherwise the served model directly."""
    config = Settings.of(config)
    from src.training.train import prepare_training_data, train  # imports TensorFlow: errors above come fast
    from src.tuning.hybrid import choose_settings

    settings = choose_settings(config, prepare_training_data(config, paths_config.processed_dir()))
    if evaluated:
        train(config, settings, destination=paths_config.evaluation_model_dir(), epochs=epochs, versioned=False)
    else:
        train(config, settings, epochs=epochs)


def run() -> None:
    """Console entry point."""
    run_cli(main)


if __name__ == "__main__":
    run()
