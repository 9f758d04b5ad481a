"""Leave out of a model copy what serving never reads or derives cheaply at load: the container image's model.

    python -m deploy.slim_model /opt/anime/artifacts/model    (the Dockerfile's model stage)

- ``model.keras``: the network with its optimizer state; serving reads only the embeddings and tables.
- each dense EASE B (``*item_weights.npy``) whose derivation costs at most ``hybrid.item_item.derive_max_cost``
  multiply-adds: the server derives it from the published ratings when it loads the model
  (src/artifacts.py: drop_derivable_item_weights, load_item_weights).

For a copy that bakes one version, as the image does: a server that swaps versions under load (``make serve``)
keeps the files, so a swap memory-maps B instead of spending seconds of the master's core on it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli import load_config, run_cli
from src.artifacts import drop_derivable_item_weights
from src.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.slim_model", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a model version's folder (it is changed in place)")
    parser.add_argument("--config", help="a YAML file laid over config/config.yaml")
    args = parser.parse_args(argv)
    if not (args.folder / "manifest.json").is_file():
        raise UserError(f"no model in {args.folder}: expected a model version's folder with a manifest.json")
    max_cost = int(load_config(args.config)["hybrid"]["item_item"]["derive_max_cost"])
    (args.folder / "model.keras").unlink(missing_ok=True)
    dropped = drop_derivable_item_weights(args.folder, max_cost)
    print(f"left out of {args.folder}: model.keras" + "".join(f", {name} (derived at load)" for name in dropped))
    return 0


if __name__ == "__main__":
    run_cli(main)
