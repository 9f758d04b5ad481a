"""Smoke tests of the benchmarks (bench/): every code path runs on tiny inputs, so none of it can rot.

Timings are never asserted: only that each benchmark produces its figures and the report holds together.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import http_load, run, serving_latency
from bench.request_mix import MIX, ServedModel, SoakMix, make_requests, read_requests, write_requests
from bench.synthetic_animelist import make_raw_folder, write_animelist
from src.data.processing import read_ratings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts root with a tiny random model over the real anime table (no training needed)."""
    root = tmp_path_factory.mktemp("bench-artifacts")
    serving_latency.synthetic_artifacts(root / "model", n_users=60, seed=1, embedding_size=8, ratings_per_user=30)
    return root


def test_synthetic_animelist_has_the_asked_shape(tmp_path):
    written = write_animelist(tmp_path / "animelist.csv", rows=30_000, seed=3)
    table = pd.read_csv(tmp_path / "animelist.csv")
    assert list(table.columns) == ["user_id", "anime_id", "rating", "watching_status", "watched_episodes"]
    assert len(table) == written["rows"] == 30_000
    assert table["user_id"].nunique() == written["users"] and table["user_id"].is_monotonic_increasing
    assert not table.duplicated(["user_id", "anime_id"]).any()
    assert 0.35 < (table["rating"] == 0).mean() < 0.45
    rated = table.loc[table["rating"] > 0, "rating"]
    assert rated.between(1, 10).all() and rated.isin([7, 8, 9]).mean() > 0.5
    # Zipf-like popularity: the most listed anime is in far more lists than the median one
    counts = table["anime_id"].value_counts()
    assert counts.iloc[0] > 20 * counts.median()


def test_synthetic_animelist_is_seeded(tmp_path):
    write_animelist(tmp_path / "a.csv", rows=5_000, seed=9)
    write_animelist(tmp_path / "b.csv", rows=5_000, seed=9)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_a_big_file_read_in_parallel_ranges_equals_one_stream(tmp_path, config):
    raw = tmp_path / "raw"
    make_raw_folder(raw, rows=40_000, seed=5)
    config["data"]["block_size_bytes"] = 1 << 16  # several blocks, so several line-aligned ranges
    parallel = read_ratings(raw / "animelist.csv", "animelist2020", config)
    config["data"]["block_size_bytes"] = 1 << 30  # one range: the plain streaming reader
    serial = read_ratings(raw / "animelist.csv", "animelist2020", config)
    for column in ("user_id", "anime_id", "rating"):
        np.testing.assert_array_equal(getattr(parallel, column), getattr(serial, column))
    assert len(serial.rating) == 40_000


def test_request_mix_round_trips_and_covers_every_kind(tiny_root, tmp_path):
    requests = make_requests(tiny_root / "model", 500, seed=2)
    assert read_requests(write_requests(tmp_path / "mix.tsv", requests)) == requests
    assert {request.kind for request in requests} == set(MIX)
    favourites = next(request for request in requests if request.kind == "favourites")
    assert favourites.method == "POST" and json.loads(favourites.body)["liked"]
    assert favourites.headers == {"Content-Type": "application/json"}


def test_soak_mix_draws_from_the_same_model_and_expects_a_status_for_each(tiny_root):
    model = ServedModel.from_folder(tiny_root / "model")
    assert model.genres and model.types and len(model.titles) == len(model.anime_ids)
    mix = SoakMix(model)
    requests = [mix.pick(random.Random(seed)) for seed in range(2000)]
    valid = [request for request in requests if request.expected == 200]
    invalid = [request for request in requests if request.expected != 200]
    assert valid and invalid and {request.expected for request in invalid} <= {400, 404, 405, 413, 415}
    assert {request.kind for request in valid} >= {"api user", "api similar", "api search", "api favourites",
                                                    "page index", "page anime", "probe"}
    # the valid API requests use the model's own ids and the genres its catalogue accepts
    users = [request.path for request in valid if request.kind == "api user"]
    assert all(int(path.split("/")[3]) in model.user_ids for path in users)
    assert any("genre=" in path for path in users)


def test_http_load_with_locust(tiny_root):
    result = http_load.measure(tiny_root, seconds=2, connections=4, repeats=1, generator="locust")
    figures = result["runs"][0]
    assert figures["requests"] > 0 and figures["errors"] == 0
    assert set(figures["endpoints"]) == set(MIX)
    assert figures["workers"] >= 1 and figures["max_worker_uss_mib"] > 0


def test_the_whole_benchmark_in_smoke_mode(tiny_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(tiny_root))
    assert run.main(["--smoke", "--output-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    results = report["results"]
    assert set(results) == {"serving", "http", "startup", "processing", "training"}
    assert report["machine"]["cpu_count"] >= 1 and report["model"].startswith("existing model")
    assert set(results["serving"]["results"]) == {"hybrid", "user_based", "similar_anime", "search", "favourites"}
    assert results["http"]["median"]["errors"] == 0 and results["http"]["median"]["requests"] > 0
    assert results["startup"]["median"]["ready_seconds"] > 0
    assert results["processing"]["runs"][0]["rows"] == 20_000 and results["processing"]["median"]["peak_rss_bytes"] > 0
    assert results["training"]["throughput"]["samples_per_second"] > 0
    assert results["training"]["default_model"]["epochs_run"] == 1
    summary = (tmp_path / "summary.md").read_text()
    assert summary in capsys.readouterr().out
    for figure in ("hybrid", "requests/s", "readyz", "rows/s", "samples/s", "default model"):
        assert figure in summary


def test_the_full_size_harness_in_smoke_mode(tmp_path, capsys):
    """bench/full_size.py end to end on a tiny synthetic file: every stage as its own probed process, the sample
    stability check, then serving (both servers, every endpoint). The figures mean nothing; the shape does."""
    from bench import full_size

    output = tmp_path / "full.json"
    assert full_size.main(["--smoke", "--rows", "6000", "--users", "30", "--min-user-ratings", "10", "--sampling",
                           "--workdir", str(tmp_path), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert list(report["stages"]) == ["ingest", "process", "train", "evaluate", "refit"]
    for stage in report["stages"].values():
        assert stage["returncode"] == 0 and stage["wall_seconds"] > 0 and stage["peak_rss_bytes"] > 0
        assert stage["probe"]["sections"]
    train = report["stages"]["train"]["probe"]
    # stacks are sampled about 20 times a second: a tiny ingest may end before the first, training does not
    assert train["samples"]["count"] > 0 and train["samples"]["count"] >= train["stage_seconds"] * 5
    assert any(path.endswith("choose_settings > fit_ncf") for path in train["sections"])
    assert any("publish" in path for path in report["stages"]["refit"]["probe"]["sections"])
    fits = [fit for stage in report["stages"].values() for fit in stage["probe"]["ncf_fits"]]
    assert len(fits) == 3 and all(fit["users_per_second"] > 0 and fit["interactions_per_second"] > 0 for fit in fits)
    assert report["pipeline"]["wall_seconds"] >= sum(s["wall_seconds"] for s in report["stages"].values()) - 1
    assert report["outcome"]["metrics"]["known_users"]["hybrid"]["recall"] >= 0
    assert report["sampling"]["recommended_max_users"] > 0 and "hybrid" in report["sampling"]["methods"]
    serving = report["serving"]
    assert set(serving["startup"]) == {"full", "gunicorn"}
    paced = serving["http_paced"]  # the latency at a paced load, beside the saturating one
    assert paced["rate"] == 20.0 and paced["median"]["requests"] > 0 and paced["median"]["errors"] == 0
    assert set(serving["in_process"]["api"]) == {"hybrid", "user_based", "similar_anime", "search", "favourites"}
    assert {"page index", "page anime", "openapi"} <= set(serving["http_endpoints"])
    statuses = {kind: {int(status) for status in figures["statuses"]}
                for kind, figures in serving["http_endpoints"].items()}
    assert all(found == {200} for found in statuses.values()), statuses
    assert serving["http_mix"]["median"]["errors"] == 0 and serving["http_mix"]["median"]["requests"] > 0
    summary = output.with_suffix(".md").read_text()
    assert summary in capsys.readouterr().out
    for figure in ("whole pipeline", "users/s", "interactions/s", "Sampled profile", "readyz", "max_users"):
        assert figure in summary
    assert not list(tmp_path.glob("bench-full-*")), "the scratch folder is deleted"


def test_search_latency_benchmark_in_smoke_mode(tmp_path, capsys):
    """bench/search_latency.py end to end on the real catalogue, a couple of rounds, against the index before
    issue 28 (commit 4c86a76): the figures mean nothing here; the report's shape and the answers do."""
    from bench import search_latency

    output = tmp_path / "search.json"
    assert search_latency.main(["--rounds", "2", "--builds", "1", "--before", "4c86a76", "--output",
                                str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["n_anime"] == 17_562 and report["latency"]["search"]["all"]["samples"] > 0
    assert report["first_answers"]["after"]["jjk"].endswith("(40748)")
    assert report["first_answers"]["before"]["jjk"] == "-"  # the old index found nothing for it
    assert "search p99" in capsys.readouterr().out


def test_list_import_benchmark_in_smoke_mode(tiny_root, tmp_path, capsys):
    """bench/list_import.py end to end on the tiny model: the 243-entry sample, a real user's list and a union of
    real users' lists (no user has 2,500 rows), two rounds, every hostile file once with a small bomb. The figures
    mean nothing here; the report's shape, the lists' make-up and the refusals' statuses do."""
    from bench import list_import

    output = tmp_path / "list_import.json"
    assert list_import.main(["--model-root", str(tiny_root), "--sizes", "300", "2500", "--repeats", "2", "--warmup",
                             "1", "--hostile-repeats", "1", "--bomb-mib", "32", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert list(report["lists"]) == ["243 (sample)", "300", "2,500"]
    layers = {"parse_xml", "parse_gz", "engine", "api_xml", "api_gz"}
    for figures in report["lists"].values():
        assert layers <= set(figures) and all(figures[layer]["samples"] == 2 for layer in layers)
        imported = figures["imported"]
        assert imported["entries"] == imported["known"] == figures["entries"]  # real ids, all in the catalogue
        assert figures["gz_bytes"] < figures["xml_bytes"] / 10
        assert sum(imported["by_status"].values()) == imported["entries"] and imported["by_status"]["completed"]
        assert 0 < imported["rated"] <= imported["entries"]
    assert report["lists"]["300"]["origin"].startswith("embedded-sample user")
    assert report["lists"]["2,500"]["origin"].startswith("union of the 2 heaviest")
    assert report["lists"]["2,500"]["entries"] == 2500
    assert {"favourites_api", "favourites_engine", "healthz_api"} <= set(report["baseline"])
    assert report["baseline"]["favourites"]["liked"] == 20
    assert set(report["ratios"]) == set(report["lists"])
    assert all(ratio > 0 for ratios in report["ratios"].values() for ratio in ratios.values())
    hostile = report["hostile"]
    assert len(hostile) == 6 and {figures["status"] for figures in hostile.values()} == {400, 413}
    assert all(figures["parse"]["samples"] == figures["api"]["samples"] == 1 for figures in hostile.values())
    assert report["gc"]["tracked_objects"] > 0 and "generation_2" in report["gc"]["pauses_during_list_rounds"]
    out = capsys.readouterr().out
    assert report["markdown"] in out and "| 2,500 |" in out and "billion laughs" in out


def test_serving_mix_request_files_have_the_issue_shares(tiny_root, tmp_path):
    """bench/serving_mix.py's requests files (issue 30), no servers: each kind exactly its share, over the model's own
    ids, with the options each kind promises, and through a requests file unchanged."""
    from collections import Counter

    from bench import serving_mix

    model = ServedModel.from_folder(tiny_root / "model")
    mix = serving_mix.build_requests(model, "mix", 2000, seed=3)
    assert Counter(request.kind for request in mix) == {"recommendations": 1200, "similar": 500, "search": 300}
    realistic = serving_mix.build_requests(model, "realistic", 2000, seed=3)
    counts = Counter(request.kind for request in realistic)
    assert sum(counts.values()) == 2000 and counts["favourites"] == 200
    assert counts["filtered recommendations"] + counts["filtered similar"] == 200
    assert counts["n=100 recommendations"] + counts["n=100 similar"] == 100
    assert (counts["recommendations"], counts["similar"], counts["search"]) == (900, 375, 225)
    assert counts["filtered recommendations"] / counts["filtered similar"] == pytest.approx(60 / 25, rel=0.05)
    users, anime = set(map(str, model.user_ids)), set(map(str, model.anime_ids))
    for request in mix + realistic:
        path, _, query = request.path.partition("?")
        parts = path.split("/")
        if request.kind.endswith("recommendations"):
            assert request.method == "GET" and parts[3] in users
        elif request.kind.endswith("similar"):
            assert request.method == "GET" and parts[3] in anime and parts[4] == "similar"
        elif request.kind == "search":
            assert path == "/api/anime/search" and query.startswith("q=")
        else:
            liked = json.loads(request.body)["liked"]
            assert request.method == "POST" and 3 <= len(liked) <= 10 and set(map(str, liked)) <= anime
        if request.kind in ("recommendations", "similar"):
            assert not query  # default options
        if request.kind.startswith("filtered"):
            assert "genre=" in query or "year_from=" in query
        if request.kind.startswith("n=100"):
            assert query == "n=100"
    assert any("genre=" in request.path for request in realistic)
    assert any("year_from=" in request.path for request in realistic)
    assert read_requests(write_requests(tmp_path / "realistic.tsv", realistic)) == realistic
    assert serving_mix.build_requests(model, "realistic", 2000, seed=3) == realistic  # seeded
    assert {request.path for request in serving_mix.build_requests(model, "healthz", 5)} == {"/healthz"}
