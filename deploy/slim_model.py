"""Leave out of a model copy what serving never reads or derives cheaply at load: the container image's model.

    python -m deploy.slim_model /opt/anime/artifacts/model    (the Dockerfile's model stage)

- ``model.keras``: the network with its optimizer state; serving reads only the embeddings and tables.
- each dense EASE B (``*item_weights.npy``) whose derivation costs at most ``hybrid.item_item.derive_max_cost``
  multiply-adds: the server derives it from the published ratings when it loads the model
  (src/store/artifacts.py: drop_derivable_item_weights, load_item_weights);
- the similar-anime candidates (src/engine/candidates.py; 12 MB for the 17,562 titles), which the image's size
  budget (400 MB, DEPLOYMENT.md) has no room for: the image scores similar anime live (under a millisecond at
  400 ratings, bench/RESULTS.md); the known users' candidates, a fraction of a MB there, stay.

For a copy that bakes one version, as the image does: a server that swaps versions under load (``make serve``)
keeps the files, so a swap memory-maps B instead of spending seconds of the master's core on it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli import load_config, run_cli
from src.engine.candidates import drop_table
from src.errors import UserError
from src.store.artifacts import drop_derivable_item_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.slim_model", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a model version's folder (it is changed in place)")
    parser.add_argument("--config", help="a YAML file laid over config/config.yaml")
    args = parser.parse_args(argv)
    if not (args.folder / "manifest.json").is_file():
        raise UserError(f"no model in {args.folder}: expected a model version's folder with a manifest.json")
    max_cost = int(load_config(args.config).hybrid.item_item.derive_max_cost)
    (args.folder / "model.keras").unlink(missing_ok=True)
    dropped = [f"{name} (derived at load)" for name in drop_derivable_item_weights(args.folder, max_cost)]
    if drop_table(args.folder, "anime"):
        dropped.append("the similar-anime candidates (scored live)")
    print(f"left out of {args.folder}: model.keras" + "".join(f", {name}" for name in dropped))
    return 0


if __name__ == "__main__":
    run_cli(main)
