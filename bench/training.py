"""Training: samples/s and seconds per epoch on the embedded sample, and the time to train the default model.

    python -m bench.training                    # the default model end to end, then 6 epochs of throughput
    python -m bench.training --epochs 3 --skip-default

Run from the repository root.

Throughput: the embedded sample processed with ``--min-user-ratings 50`` (2,230 users, as artifacts/model),
the configured model and batches (rated pairs plus freshly drawn negatives), fitted with Keras as
``train()`` fits it. samples/s = training samples of an epoch (positives + negatives) / that epoch's seconds,
validation included; the first epoch also compiles (XLA), so it is reported apart and the median is over the
later epochs.
Default model: ingest -> process -> train with config/config.yaml as it is, timed from the start of a fresh
process (TensorFlow's import included): what a new user waits for ``pipeline/training_pipeline.py`` before
evaluation. Both run in one child process, so TensorFlow is imported once and its memory and threads leave
with it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import PROJECT_ROOT, save_json


def load_config(overrides: dict[str, Any]) -> dict[str, Any]:
    """The project's config (config.loader) with ``overrides`` ({"section.key": value}) laid over it, unknown
    keys refused as for a user's config file; the smoke test makes it tiny."""
    from config.loader import load_config as project_config
    from config.loader import merge

    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        *sections, key = dotted.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
    return merge(project_config(), nested, source="the benchmark's overrides")


def throughput_child(root: Path, epochs: int, min_user_ratings: int, overrides: dict[str, Any]) -> dict:
    """The NCF's training speed: ``epochs`` full epochs (no early stopping, no step cap) on the training split.
    A sample is one (user, anime) entry of a user's target list, the unit the pointwise model trained on."""
    import keras

    from config import paths_config
    from src.data.ingestion import ingest
    from src.data.processing import process
    from src.training.train import fit_ncf, prepare_training_data

    config = load_config(overrides)
    config["training"].update(verbose=0, early_stopping_patience=None, max_steps=10**9)
    ingest(config, destination=paths_config.raw_dir(root))
    process(config, raw_dir=paths_config.raw_dir(root), destination=paths_config.processed_dir(root),
            min_user_ratings=min_user_ratings)
    data = prepare_training_data(config, paths_config.processed_dir(root))
    samples_per_epoch = int(data.train_targets.nnz)
    seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.started)

    fit_ncf(config, data.train_targets, data.validation_targets, epochs, [EpochTimer()])
    later = slice(1, None) if epochs > 1 else slice(None)
    return {"users": len(data.user_ids), "anime": len(data.anime_ids), "epochs": epochs,
            "batch_size": int(config["training"]["batch_size"]),
            "jit_compile": bool(config["model"].get("jit_compile")),
            "samples_per_epoch": [samples_per_epoch] * len(seconds), "epoch_seconds": [round(s, 3) for s in seconds],
            "first_epoch_seconds": round(seconds[0], 3),
            "seconds_per_epoch": round(statistics.median(seconds[later]), 3),
            "samples_per_second": round(samples_per_epoch / statistics.median(seconds[later]))}


def default_model_child(root: Path, overrides: dict[str, Any]) -> dict:
    """Ingest, process and train with the configuration as it is; seconds of each stage."""
    started = time.perf_counter()
    from config import paths_config
    from src.data.ingestion import ingest
    from src.data.processing import process
    from src.training.train import prepare_training_data, train
    from src.tuning.hybrid import choose_settings

    stages = {"imports": time.perf_counter() - started}
    config = load_config(overrides)
    config["training"]["verbose"] = 0
    processed = paths_config.processed_dir(root)
    outcome: dict[str, Any] = {}
    for name, step in [
        ("ingest", lambda: ingest(config, destination=paths_config.raw_dir(root))),
        ("process", lambda: process(config, raw_dir=paths_config.raw_dir(root), destination=processed)),
        ("choose settings", lambda: outcome.update(
            settings=choose_settings(config, prepare_training_data(config, processed)))),
        ("train", lambda: outcome.update(manifest=train(config, outcome["settings"], processed_dir=processed,
                                                        destination=paths_config.model_dir(root),
                                                        comet_directory=paths_config.comet_dir(root)))),
    ]:
        begun = time.perf_counter()
        step()
        stages[name] = time.perf_counter() - begun
    result = outcome["manifest"]
    return {"seconds": round(time.perf_counter() - started, 2), "stages": {k: round(v, 2) for k, v in stages.items()},
            "users": result["counts"]["users"], "epochs_run": result["training"]["epochs_run"]}


def child(root: Path, epochs: int, min_user_ratings: int, default_model: bool, overrides: dict[str, Any]) -> dict:
    """The default model first (its time counts TensorFlow's import, as a user's run does), then the
    throughput epochs, in one process so TensorFlow is imported once."""
    result = {}
    if default_model:
        result["default_model"] = default_model_child(root / "default", overrides)
    result["throughput"] = throughput_child(root / "throughput", epochs, min_user_ratings, overrides)
    return result


def measure(epochs: int = 6, min_user_ratings: int = 50, default_model: bool = True,
            overrides: dict[str, Any] | None = None, timeout: float = 1800) -> dict:
    """Run the child process; its result, plus the overrides when there were any."""
    options = ["--epochs", str(epochs), "--min-user-ratings", str(min_user_ratings),
               "--overrides", json.dumps(overrides or {}), *([] if default_model else ["--skip-default"])]
    with tempfile.TemporaryDirectory(prefix="bench-training-") as root:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-m", "bench.training", "--child", "--root", root, *options],
                              capture_output=True, text=True, timeout=timeout, env=env, cwd=PROJECT_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"training benchmark failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if overrides:
        result["overrides"] = overrides
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6, help="epochs timed for throughput (the first compiles)")
    parser.add_argument("--min-user-ratings", type=int, default=50)
    parser.add_argument("--skip-default", action="store_true", help="do not time the default model")
    parser.add_argument("--overrides", default="{}", help='config changes as JSON, e.g. {"model.jit_compile": false}')
    parser.add_argument("--output", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    overrides = json.loads(args.overrides)
    if args.child:
        print(json.dumps(child(args.root, args.epochs, args.min_user_ratings, not args.skip_default, overrides)))
        return 0
    result = measure(args.epochs, args.min_user_ratings, not args.skip_default, overrides)
    print(json.dumps(result, indent=2))
    if args.output:
        save_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
