"""One worker of tests/test_distributed.py: the NCF's training step under MultiWorkerMirroredStrategy.

    TF_CONFIG='{"cluster": {"worker": ["localhost:P0", "localhost:P1"]}, "task": {"type": "worker", "index": 0}}' \
    python -m tests.distributed_worker --config CONFIG.json --processed DIR --output WORKER0.npz

Trains ``fit_ncf`` on the processed data with the strategy (each worker its share of every batch of users) and
writes the trained embeddings and the history, so the test can compare the workers with each other and with the
single-process fit.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from src.training.train import fit_ncf, prepare_training_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the whole project config as JSON")
    parser.add_argument("--processed", type=Path, required=True, help="a processed folder (the process stage's)")
    parser.add_argument("--output", type=Path, required=True, help="where the embeddings go (.npz)")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text(encoding="utf-8"))
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # the cluster and this worker's place: TF_CONFIG
    data = prepare_training_data(config, args.processed)
    started = time.perf_counter()
    fitted = fit_ncf(config, data.train_targets, data.validation_targets, strategy=strategy)
    users, anime, bias = fitted.embeddings()
    np.savez(args.output, users=users, anime=anime, bias=bias)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "task": strategy.cluster_resolver.task_id,
                      "seconds": round(time.perf_counter() - started, 2), "history": fitted.history}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
