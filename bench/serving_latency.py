"""In-process serving latency: p50 / p95 / p99 per request kind, engine alone and through the Flask app.

    python -m bench.serving_latency                          # the trained artifacts (config/paths_config.py)
    python -m bench.serving_latency --artifacts DIR -r 2000 --repeats 3
    python -m bench.serving_latency --synthetic 20000        # no trained model yet: 20,000 random users over
                                                             # the embedded sample's real anime table

Each kind gets ``--requests`` random valid requests (seeded) after ``--warmup`` unmeasured ones. "engine" times
the Recommender call alone; "api" times the same request through Flask's test client (routing, parsing,
JSON encoding), still without a network. With ``--repeats`` the table shows each figure's median over the
runs. Targets (2 cores): hybrid p99 <= 20 ms, similar and search <= 5 ms.
Prints a table and writes bench/results/serving_latency.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# As under gunicorn (gunicorn.conf.py): one BLAS thread per process, set before numpy is imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from config.paths_config import PROJECT_ROOT, SAMPLE_DATA_DIR, model_dir  # noqa: E402
from src.engine.recommender import Recommender  # noqa: E402
from src.web.state import EXTENSION_KEY  # noqa: E402
from tests.serving_fixtures import write_model_artifacts  # noqa: E402  (the tests' hand-made artifact writer)

RESULTS = PROJECT_ROOT / "bench" / "results" / "serving_latency.json"
TARGETS_MS = {"hybrid": 20.0, "similar_anime": 5.0, "search": 5.0}
KINDS = ("hybrid", "user_based", "similar_anime", "search", "favourites")


def synthetic_artifacts(folder: Path, n_users: int, seed: int, embedding_size: int = 128,
                        ratings_per_user: int = 200) -> Path:
    """Random but structured artifacts over the embedded sample's real anime table (real titles for search)."""
    rng = np.random.default_rng(seed)
    raw = pd.read_csv(SAMPLE_DATA_DIR / "anime.csv.zip", na_values=["Unknown"])
    anime = pd.DataFrame({
        "anime_id": raw["MAL_ID"].astype(np.int64), "name": raw["Name"],
        "english_name": raw["English name"].fillna(raw["Name"]),
        "genres": [[g.strip() for g in str(v).split(",")] if isinstance(v, str) else [] for v in raw["Genders"]],
        "type": raw["Type"], "episodes": pd.to_numeric(raw["Episodes"], errors="coerce").astype("Int32"),
        "premiered": raw["Premiered"],
        "year": pd.to_numeric(raw["Premiered"].str.extract(r"(\d{4})", expand=False), errors="coerce").astype("Int32"),
        "score": pd.to_numeric(raw["Score"], errors="coerce").astype(np.float32),
        "members": pd.to_numeric(raw["Members"], errors="coerce").fillna(0).astype(np.int64), "synopsis": None,
    })
    n_anime = len(anime)
    topics = rng.normal(size=(32, embedding_size))
    anime_embeddings = topics[rng.integers(0, 32, n_anime)] + 0.5 * rng.normal(size=(n_anime, embedding_size))
    user_embeddings = topics[rng.integers(0, 32, n_users)] + 0.5 * rng.normal(size=(n_users, embedding_size))
    popularity = anime["members"].to_numpy(np.float64) + 1.0
    per_user = rng.integers(ratings_per_user // 2, ratings_per_user * 2, n_users)
    user_index = np.repeat(np.arange(n_users), per_user)
    anime_index = rng.choice(n_anime, size=len(user_index), p=popularity / popularity.sum())
    ratings = pd.DataFrame({"user_index": user_index.astype(np.int32), "anime_index": anime_index.astype(np.int32),
                            "rating": rng.integers(0, 11, len(user_index)).astype(np.int8),
                            "split": (rng.random(len(user_index)) < 0.2).astype(np.int8) * 2})
    write_model_artifacts(folder, user_embeddings.astype(np.float32), anime_embeddings.astype(np.float32),
                          np.arange(1, n_users + 1), anime["anime_id"].to_numpy(), anime, ratings,
                          {"data_source": f"synthetic: {n_users} random users over the embedded anime table"})
    return folder


def request_makers(engine: Recommender, rng: np.random.Generator) -> dict[str, tuple[Callable, Callable]]:
    """Per kind: (engine call, (method, url, json) for the API), each drawing a fresh random valid request."""
    user_ids, anime_ids = engine.user_ids, engine.anime_ids
    titles = [item["english_name"] or item["name"] for item in (engine.anime(int(a)) for a in anime_ids)]

    def user() -> int:
        return int(rng.choice(user_ids))

    def anime() -> int:
        return int(rng.choice(anime_ids))

    def query() -> str:
        title = titles[rng.integers(len(titles))]
        start = int(rng.integers(0, max(len(title) - 3, 1)))
        return title[start:start + int(rng.integers(3, 8))].strip() or title

    def liked() -> list[int]:
        return [int(a) for a in rng.choice(anime_ids, size=int(rng.integers(3, 6)), replace=False)]

    def hybrid():
        u = user()
        return lambda: engine.recommend_for_user(u, 10), ("get", f"/api/users/{u}/recommendations?n=10", None)

    def user_based():
        u = user()
        return (lambda: engine.recommend_for_user(u, 10, 1.0, 0.0),
                ("get", f"/api/users/{u}/recommendations?n=10&user_weight=1&content_weight=0", None))

    def similar():
        a = anime()
        return lambda: engine.similar_anime(a, 10), ("get", f"/api/anime/{a}/similar?n=10", None)

    def search():
        q = query()
        return lambda: engine.search(q, 10), ("get", "/api/anime/search", {"q": q, "limit": 10})

    def favourites():
        ids = liked()
        return (lambda: engine.recommend_from_favourites(ids, 10),
                ("post", "/api/recommendations", {"liked": ids, "n": 10}))

    return {"hybrid": hybrid, "user_based": user_based, "similar_anime": similar, "search": search,
            "favourites": favourites}


def _call_api(client, request: tuple[str, str, dict | None]) -> None:
    method, url, payload = request
    if method == "get":
        response = client.get(url, query_string=payload) if payload else client.get(url)
    else:
        response = client.post(url, json=payload)
    if response.status_code != 200:
        raise RuntimeError(f"{method.upper()} {url} answered {response.status_code}: {response.get_data(as_text=True)}")


def measure(make: Callable, client, requests: int, warmup: int) -> dict[str, dict[str, float]]:
    timings = {"engine": [], "api": []}
    for i in range(warmup + requests):
        engine_call, api_request = make()
        start = time.perf_counter_ns()
        engine_call()
        middle = time.perf_counter_ns()
        _call_api(client, api_request)
        end = time.perf_counter_ns()
        if i >= warmup:
            timings["engine"].append((middle - start) / 1e6)
            timings["api"].append((end - middle) / 1e6)
    return {layer: _summary(np.array(values)) for layer, values in timings.items()}


def _summary(ms: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3),
            "mean_ms": round(float(ms.mean()), 3), "max_ms": round(float(ms.max()), 3), "requests": int(len(ms))}


def print_table(results: dict[str, dict[str, dict[str, float]]]) -> None:
    print(f"{'request':<15}{'layer':<8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}  target p99")
    for kind, layers in results.items():
        for layer, stats in layers.items():
            target = TARGETS_MS.get(kind)
            verdict = "" if target is None else f"<= {target:g} ms {'ok' if stats['p99_ms'] <= target else 'MISSED'}"
            print(f"{kind:<15}{layer:<8}{stats['p50_ms']:>9.2f}{stats['p95_ms']:>9.2f}{stats['p99_ms']:>9.2f}"
                  f"{stats['max_ms']:>9.2f}  {verdict if layer == 'engine' else ''}")


def measure_engine(engine, client, requests: int, warmup: int, seed: int, repeats: int = 1) -> dict:
    """Every kind, ``repeats`` times with fresh random requests; per kind and layer, each run's figures and
    their medians."""
    runs = []
    for repeat in range(repeats):
        rng = np.random.default_rng(seed + repeat)
        makers = request_makers(engine, rng)
        runs.append({kind: measure(make, client, requests, warmup) for kind, make in makers.items()})
    medians = {kind: {layer: {stat: float(np.median([run[kind][layer][stat] for run in runs]))
                              for stat in runs[0][kind][layer]}
                      for layer in runs[0][kind]}
               for kind in runs[0]}
    return {"runs": runs, "median": medians}


def run(folder: Path, requests: int = 1000, warmup: int = 100, seed: int = 42, repeats: int = 1) -> dict:
    """Load the app on the artifacts in ``folder`` once and measure; return the report."""
    from application import create_app

    started = time.perf_counter()
    app = create_app({"ARTIFACTS_DIR": str(folder)})
    load_seconds = time.perf_counter() - started
    state = app.extensions[EXTENSION_KEY]
    engine = state.recommender
    if engine is None:
        raise RuntimeError(f"no model to benchmark in {folder}: {state.reason}")
    measured = measure_engine(engine, app.test_client(), requests, warmup, seed, repeats)
    return {
        "artifacts": str(folder), "data_source": engine.manifest.get("data_source"),
        "n_users": engine.n_users, "n_anime": engine.n_anime, "n_interactions": len(engine.interactions),
        "embedding_size": int(engine.anime_embeddings.shape[1]), "load_seconds": round(load_seconds, 3),
        "requests_per_kind": requests, "warmup_per_kind": warmup, "repeats": repeats, "seed": seed,
        "targets_p99_ms": TARGETS_MS, "results": measured["median"], "runs": measured["runs"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, default=None, help="model artifacts folder (default: the model dir)")
    parser.add_argument("--synthetic", type=int, metavar="USERS", help="benchmark random artifacts with USERS users")
    parser.add_argument("-r", "--requests", type=int, default=1000, help="measured requests per kind (default 1000)")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured requests per kind first (default 100)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every kind; the table shows medians")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.artifacts or model_dir()
        if args.synthetic:
            folder = synthetic_artifacts(Path(scratch) / "model", args.synthetic, args.seed)
        try:
            report = run(folder, args.requests, args.warmup, args.seed, args.repeats)
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if args.synthetic:
        report["artifacts"] = "synthetic"
    print(f"{report['n_users']:,} users, {report['n_anime']:,} anime, {report['n_interactions']:,} interactions; "
          f"load + index {report['load_seconds']:.2f} s; {os.cpu_count()} CPUs")
    print_table(report["results"])
    report["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                         "platform": platform.platform()}
    report["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
