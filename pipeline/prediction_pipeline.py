"""Script-facing wrapper over the serving engine: recommendations from the command line or a notebook.

    python pipeline/prediction_pipeline.py 1234                 # hybrid, 0.5 / 0.5
    python pipeline/prediction_pipeline.py 1234 --user-weight 0.8 --content-weight 0.2 -n 20

``hybrid_recommendation`` keeps the original project's signature and return value (a list of titles); the
engine (src/recommender.py) has the full items with reasons.
"""
from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.paths_config import model_dir  # noqa: E402
from src.errors import UserError  # noqa: E402
from src.recommender import Recommender  # noqa: E402


@lru_cache(maxsize=4)
def load_recommender(folder: str | None = None) -> Recommender:
    """The engine for ``folder`` (default: the model dir), loaded once per process."""
    return Recommender.from_folder(folder or model_dir())


def hybrid_recommendation(user_id: int, user_weight: float = 0.5, content_weight: float = 0.5,
                          n: int = 10) -> list[str]:
    """Titles of the top-n hybrid recommendations for ``user_id`` (English title where there is one)."""
    items = load_recommender().recommend_for_user(user_id, n, user_weight, content_weight)
    return [item["english_name"] or item["name"] for item in items]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Hybrid anime recommendations for one MyAnimeList user.")
    parser.add_argument("user_id", type=int)
    parser.add_argument("-n", type=int, default=10, help="how many (default 10)")
    parser.add_argument("--user-weight", type=float, default=0.5)
    parser.add_argument("--content-weight", type=float, default=0.5)
    parser.add_argument("--artifacts", help="model artifacts folder (default: the model dir)")
    args = parser.parse_args(argv)
    try:
        engine = load_recommender(args.artifacts)
        items = engine.recommend_for_user(args.user_id, args.n, args.user_weight, args.content_weight)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for rank, item in enumerate(items, 1):
        print(f"{rank:>2}. {item['english_name'] or item['name']}  ({'; '.join(item['reasons'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
