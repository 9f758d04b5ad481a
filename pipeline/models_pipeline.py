"""Show and switch the published model versions (src/store/registry.py).

    anime-models list                 # the kept versions, newest first; * marks the current one
    anime-models rollback             # make the version published before the current one current again
    anime-models rollback VERSION     # make that kept version current (older or newer)

Works on artifacts/model (ANIME_ARTIFACTS_DIR moves the artifacts root). A version becomes current only after
the load checks the server runs. A running gunicorn serves it after `kill -HUP <master pid>`, or within
MODEL_WATCH_SECONDS when it watches the pointer (DEPLOYMENT.md, "Model versions").
"""
from __future__ import annotations

import argparse

from config.paths_config import model_dir
from pipeline.cli import load_config, run_cli
from src.engine.model_check import ServingCheck
from src.store.registry import ModelVersion, list_versions, rollback, versions_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="anime-models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="config file (default config/config.yaml): the serving settings the "
                                         "load checks use")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,rollback}")
    commands.add_parser("list", help="show the kept model versions, newest first (* = current)")
    back = commands.add_parser("rollback", help="make an earlier (or any kept) version current")
    back.add_argument("version", nargs="?", help="the version to make current (default: the one before the "
                                                 "current one)")
    return parser.parse_args(argv)


def format_versions(versions: list[ModelVersion]) -> str:
    rows = [("", "VERSION", "PUBLISHED (UTC)", "USERS", "ANIME")]
    rows += [("*" if v.current else "", v.version, (v.published_at or "?")[:19].replace("T", " "),
              "?" if v.users is None else str(v.users), "?" if v.anime is None else str(v.anime)) for v in versions]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) if column < 3 else cell.rjust(width)
                               for column, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
                     for row in rows)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pointer = model_dir()
    if args.command == "list":
        versions = list_versions(pointer)
        if not versions:
            print(f"no published model under {versions_dir(pointer)}: run `anime-train` first")
            return
        print(format_versions(versions))
        return
    was, now = rollback(pointer, ServingCheck.from_config(load_config(args.config)), args.version)
    if was == now:
        print(f"model version {now} is already current at {pointer}")
        return
    print(f"model version {now} is now current at {pointer} (was {was or 'none'}); a running server takes it up "
          "on `kill -HUP <gunicorn master pid>`, or by itself when it watches the pointer")


def run() -> None:
    """Console entry point."""
    run_cli(main)


if __name__ == "__main__":
    run()
