"""Script-facing wrapper over the serving engine: recommendations from the command line or a notebook.

    python pipeline/prediction_pipeline.py 1234                 # hybrid, weights from config/config.yaml
    python pipeline/prediction_pipeline.py 1234 --user-weight 0.8 --content-weight 0.2 -n 20

The engine is built exactly as the web app builds it (same config, same artifacts), so this prints the same list
as ``GET /api/users/1234/recommendations``. ``hybrid_recommendation`` keeps the original project's signature and
return value (a list of titles); the engine (src/engine/recommender.py) has the full items with reasons.
"""
from __future__ import annotations

import argparse
from functools import lru_cache

from config.paths_config import model_dir
from config.settings import ServingConfig
from pipeline.cli import load_config, run_cli
from src.engine.recommender import Recommender


@lru_cache(maxsize=4)
def load_recommender(folder: str | None = None, config_path: str | None = None) -> Recommender:
    """The engine for ``folder`` (default: the model dir), loaded once per process, configured like the web app."""
    return Recommender.from_folder(folder or model_dir(), ServingConfig.from_config(load_config(config_path)))


def hybrid_recommendation(user_id: int, user_weight: float | None = None, content_weight: float | None = None,
                          n: int | None = None) -> list[str]:
    """Titles of the top-n hybrid recommendations for ``user_id`` (English title where there is one)."""
    items = load_recommender().recommend_for_user(user_id, n, user_weight, content_weight)
    return [item["english_name"] or item["name"] for item in items]


def main() -> None:
    parser = argparse.ArgumentParser(description="Hybrid anime recommendations for one MyAnimeList user.")
    parser.add_argument("user_id", type=int)
    parser.add_argument("-n", type=int, help="how many (default: serving.default_n of the config)")
    parser.add_argument("--user-weight", type=float, help="similar users' weight (default from the config)")
    parser.add_argument("--content-weight", type=float, help="similar anime's weight (default from the config)")
    parser.add_argument("--artifacts", help="model artifacts folder (default: the model dir)")
    parser.add_argument("--config", help="config file (default config/config.yaml)")
    args = parser.parse_args()
    engine = load_recommender(args.artifacts, args.config)
    items = engine.recommend_for_user(args.user_id, args.n, args.user_weight, args.content_weight)
    for rank, item in enumerate(items, 1):
        print(f"{rank:>2}. {item['english_name'] or item['name']}  ({'; '.join(item['reasons'])})")


def run() -> None:
    """Console entry point."""
    run_cli(main)


if __name__ == "__main__":
    run()
