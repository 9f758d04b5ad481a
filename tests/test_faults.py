"""Faults: broken artifacts at start-up, and a full disk or malformed rows during training.

- Missing, truncated, empty or mismatched artifacts: the app still starts, /healthz is 200, /readyz is 503 with
  a reason naming the fault, the API and pages say the same, and no traceback is logged (the fault is known,
  not a crash). Checked in process for every fault, and with a real gunicorn process for two of them.
- A ratings file with a few malformed rows trains anyway; the rows are counted in the log and the manifest.
- A full disk (simulated with RLIMIT_FSIZE: writes past the limit fail with EFBIG, as root cannot be stopped by
  chmod) during processing or training: one error line, a non-zero exit, and the previous artifacts
  byte-identical and still served.
(SIGKILL mid-training and an unwritable artifacts folder are in test_training_pipeline.py.)
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from application import create_app
from bench.servers import gunicorn
from config import paths_config
from src.store.artifacts import SERVING_FILES, read_anime_table, read_ratings
from tests.conftest import small_training_config
from tests.raw_data import write_anime_2020, write_ratings
from tests.serving_fixtures import TEST_USER

Mutation = Callable[[Path], None]


# ---------------------------------------------------------------------------------------------------------
# Broken artifacts at start-up
# ---------------------------------------------------------------------------------------------------------
def _remove(name: str) -> Mutation:
    return lambda folder: (folder / name).unlink()


def _truncate(name: str) -> Mutation:
    def mutate(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    return mutate


def _empty(name: str) -> Mutation:
    return lambda folder: (folder / name).write_bytes(b"")


def _save(name: str, array: np.ndarray) -> Mutation:
    return lambda folder: np.save(folder / name, array, allow_pickle=False)


def _object_array(name: str) -> Mutation:
    """What a pickled array looks like to np.load: an object-dtype header (the payload is never reached)."""
    def mutate(folder: Path) -> None:
        with (folder / name).open("wb") as handle:
            np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (USERS,)})
            handle.write(b"\x80\x04 not even a real pickle")
    return mutate


def _write(name: str, text: str) -> Mutation:
    return lambda folder: (folder / name).write_text(text, encoding="utf-8")


def _anime_table(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Mutation:
    """Rewrite anime.json with ``change`` applied to its records."""
    def mutate(folder: Path) -> None:
        frame = change(read_anime_table(folder / "anime.json"))
        (folder / "anime.json").write_text(frame.to_json(orient="records"), encoding="utf-8")
    return mutate


def _ratings_table(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Mutation:
    """Rewrite user_ratings.npy with ``change`` applied to its columns (their types as ``change`` leaves them)."""
    def mutate(folder: Path) -> None:
        frame = change(read_ratings(folder / "user_ratings.npy"))
        np.save(folder / "user_ratings.npy", frame.to_records(index=False), allow_pickle=False)
    return mutate


def _dense_item_weights(folder: Path, support: np.ndarray, size: int) -> None:
    """EASE weights as save_item_weights writes a dense B: the support in the npz, B beside it as .npy."""
    np.savez(folder / "item_weights.npz", support=support)
    np.save(folder / "item_weights.npy", np.zeros((size, size), np.float32), allow_pickle=False)


def _derived_item_weights(folder: Path, support: np.ndarray, values: str, regularisation: float) -> None:
    """EASE weights as save_item_weights writes a cheap dense B: its support and settings, derived at load."""
    (folder / "item_weights.npy").unlink(missing_ok=True)
    np.savez(folder / "item_weights.npz", support=support, values=np.array(values),
             regularisation=np.array(regularisation))


def _replace_folder_by_file(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.write_text("not a folder", encoding="utf-8")


def _file_becomes_folder(folder: Path) -> None:
    (folder / "user_ids.json").unlink()
    (folder / "user_ids.json").mkdir()


USERS, ANIME, SIZE = 16, 12, 4  # the tiny artifact set's shape
ARTIFACT_FAULTS: list[tuple[str, Mutation, str]] = [
    ("no-folder", shutil.rmtree, "no model artifacts"),
    ("folder-is-a-file", _replace_folder_by_file, "no model artifacts"),
    ("file-is-a-folder", _file_becomes_folder, "missing user_ids.json"),
    *[(f"missing-{name}", _remove(name), f"missing {name}") for name in SERVING_FILES],
    *[(f"truncated-{name}", _truncate(name), "unreadable") for name in SERVING_FILES],
    *[(f"empty-{name}", _empty(name), "unreadable") for name in SERVING_FILES],
    ("pickled-object-array", _object_array("user_embeddings.npy"), "allow_pickle=False"),
    ("text-embeddings", _save("user_embeddings.npy", np.array([["x"] * SIZE] * USERS)), "float matrix"),
    ("scalar-embeddings", _save("anime_embeddings.npy", np.float32(1.0)), "float matrix"),
    ("embeddings-from-another-model", _save("user_embeddings.npy", np.ones((USERS + 3, SIZE), np.float32)),
     f"{USERS + 3} user embeddings but {USERS} user ids"),
    ("embedding-sizes-differ", _save("anime_embeddings.npy", np.ones((ANIME, SIZE + 1), np.float32)), "differ in size"),
    ("nan-embeddings", _save("anime_embeddings.npy", np.full((ANIME, SIZE), np.nan, np.float32)), "NaN or infinity"),
    ("one-anime-id-too-few", _write("anime_ids.json", json.dumps([1, 5, 6, 30, 20, 21, 101, 102, 103, 104, 105])),
     "do not match"),
    ("ids-not-integers", _write("user_ids.json", json.dumps(["1001"] * USERS)), "integer ids"),
    ("ids-past-int64", _write("user_ids.json", json.dumps([2**64 + k for k in range(USERS)])), "integer ids"),
    ("duplicate-user-ids", _write("user_ids.json", json.dumps([1001] * USERS)), "more than once"),
    ("manifest-not-an-object", _write("manifest.json", "[1, 2]"), "JSON object"),
    ("anime-table-reordered", _anime_table(lambda frame: frame.iloc[::-1]), "does not start with the anime"),
    ("anime-table-lacks-a-column", _anime_table(lambda frame: frame.drop(columns=["anime_id"])), "lacks columns"),
    ("numeric-genres", _anime_table(lambda frame: frame.assign(genres=3)), "genres must be text"),
    ("ratings-outside-the-id-maps", _ratings_table(lambda frame: frame.assign(anime_index=99)),
     "outside the id maps"),
    ("ratings-with-float-indices", _ratings_table(lambda frame: frame.assign(user_index=0.5)),
     "must hold integers"),
    ("ratings-without-a-column", _ratings_table(lambda frame: frame.drop(columns=["split"])), "must hold the columns"),
    ("bias-of-another-model", _save("anime_bias.npy", np.zeros(ANIME + 2, np.float32)), "one float per anime"),
    ("item-weights-of-another-model", lambda folder: _dense_item_weights(folder, np.arange(ANIME), 3),
     "must be 12 x 12"),
    ("item-weights-beyond-the-catalogue", lambda folder: _dense_item_weights(folder, np.array([0, 99]), 2),
     "support must"),
    ("item-weights-without-their-matrix-or-settings",
     lambda folder: (_dense_item_weights(folder, np.arange(ANIME), ANIME), (folder / "item_weights.npy").unlink()),
     "unreadable"),
    ("item-weights-truncated", _truncate("item_weights.npy"), "unreadable"),
    ("derived-item-weights-of-unknown-values",
     lambda folder: _derived_item_weights(folder, np.arange(ANIME), "stars", 50), "values must be one of"),
    ("derived-item-weights-without-regularisation",
     lambda folder: _derived_item_weights(folder, np.arange(ANIME), "any", 0.0), "regularisation must be a positive"),
    ("derived-item-weights-beyond-the-catalogue",
     lambda folder: _derived_item_weights(folder, np.array([0, 99]), "any", 50), "support must be increasing"),
]


@pytest.fixture
def broken_artifacts(tiny_model_dir: Path, tmp_path: Path) -> Callable[[Mutation], Path]:
    """A copy of the tiny artifact set, broken by the given mutation; returns the model folder."""
    def make(mutate: Mutation) -> Path:
        folder = tmp_path / "model"
        shutil.copytree(tiny_model_dir, folder)
        mutate(folder)
        return folder
    return make


@pytest.mark.parametrize("label, mutate, reason", ARTIFACT_FAULTS, ids=[fault[0] for fault in ARTIFACT_FAULTS])
def test_broken_artifacts_keep_the_app_up_and_say_why(broken_artifacts, app_log, label: str, mutate: Mutation,
                                                      reason: str) -> None:
    app = create_app({"TESTING": True, "ARTIFACTS_DIR": str(broken_artifacts(mutate))})
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and reason in ready.get_json()["reason"], ready.get_json()
    api = client.get(f"/api/users/{TEST_USER}/recommendations")
    assert api.status_code == 503 and reason in api.get_json()["error"]["message"]
    assert api.headers["Retry-After"]
    page = client.post("/", data={"userID": str(TEST_USER)})
    assert page.status_code == 503 and b"Recommendations are unavailable" in page.data
    assert not [record for record in app_log.records if record.exc_info], "a known fault must not log a traceback"


def test_the_fault_table_covers_every_serving_file() -> None:
    labels = {label for label, _, _ in ARTIFACT_FAULTS}
    for name in SERVING_FILES:
        assert {f"missing-{name}", f"truncated-{name}", f"empty-{name}"} <= labels


@pytest.mark.integration
@pytest.mark.parametrize("label", ["no-folder", "truncated-user_embeddings.npy"])
def test_gunicorn_stays_up_on_broken_artifacts(broken_artifacts, tmp_path: Path, label: str) -> None:
    mutate = next(mutation for name, mutation, _ in ARTIFACT_FAULTS if name == label)
    model = broken_artifacts(mutate)
    with gunicorn(model.parent, tmp_path / "gunicorn.log") as server:
        for _ in range(3):  # repeated probes: the worker is not crashing and being replaced
            assert server.request("GET", "/healthz")[0] == 200
            status, _, body = server.request("GET", "/readyz")
            assert status == 503 and json.loads(body)["status"] == "unavailable"
        assert server.request("GET", f"/api/users/{TEST_USER}/recommendations")[0] == 503
        assert server.process.poll() is None
        log = server.log()
    assert "not serving recommendations" in log and "Traceback" not in log
    assert log.count("Booting worker") == 1, "the worker died and was replaced"


# ---------------------------------------------------------------------------------------------------------
# Training faults, through the real CLI
# ---------------------------------------------------------------------------------------------------------
MALFORMED_ROWS = [("seven", 1, 5), (3, 2), (4, 5, 99)]  # a word, a missing field, a rating out of range


def _cli(*args: str, root: Path, limit_bytes: int | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """The training CLI in a fresh process; with ``limit_bytes``, no file it writes may grow past that size."""
    env = {**os.environ, "ANIME_ARTIFACTS_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("COMET_API_KEY", None)  # offline: never the network
    preexec = _file_size_limit(limit_bytes) if limit_bytes is not None else None
    return subprocess.run([sys.executable, str(paths_config.PROJECT_ROOT / "pipeline" / "training_pipeline.py"), *args],
                          capture_output=True, text=True, env=env, timeout=timeout, preexec_fn=preexec)


def _file_size_limit(limit_bytes: int) -> Callable[[], None]:
    def apply() -> None:
        # Past the limit the kernel sends SIGXFSZ (which kills) unless it is ignored; then write() fails with
        # EFBIG, exactly where a full disk fails with ENOSPC.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for stage in ("raw", "processed", "model") for path in sorted((root / stage).rglob("*")) if path.is_file()}


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory, base_config: dict) -> dict[str, object]:
    """Artifacts trained through the CLI from a small raw folder with a few malformed rows (under the share)."""
    workspace = tmp_path_factory.mktemp("faults")
    raw, root = workspace / "raw-input", workspace / "artifacts"
    write_anime_2020(raw, count=40)
    rng = np.random.default_rng(3)
    rows = [(user, anime, int(rng.integers(1, 11))) for user in range(60)
            for anime in rng.choice(np.arange(1, 41), 25, replace=False)]
    write_ratings(raw, rows[:700] + MALFORMED_ROWS + rows[700:])
    config = small_training_config(base_config)
    config["training"]["epochs"] = 1
    config["evaluation"]["holdout_fraction"] = 0  # no test set: the train stage publishes the served model
    config_path = workspace / "config.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    stages = {}
    for stage in ("ingest", "process", "train"):
        result = _cli("--stage", stage, "--raw-dir", str(raw), "--min-user-ratings", "10", "--config", str(config_path),
                      root=root)
        assert result.returncode == 0, result.stderr[-3000:]
        stages[stage] = result.stderr
    return {"root": root, "config": config_path, "raw": raw, "rows": len(rows), "logs": stages}


@pytest.mark.integration
def test_malformed_rows_are_skipped_and_counted_in_the_log_and_manifest(small_root: dict) -> None:
    root, total = small_root["root"], small_root["rows"] + len(MALFORMED_ROWS)
    assert f"skipped {len(MALFORMED_ROWS)} of {total} rows of rating.csv" in small_root["logs"]["process"]
    manifest = json.loads((paths_config.model_dir(root) / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["data"]["rows_skipped"] == len(MALFORMED_ROWS)
    assert manifest["data"]["skip_reasons"] == {"rows with the wrong number of fields": 1,
                                                "rows with a non-integer value": 1,
                                                "rows with an id or rating out of range": 1}
    assert manifest["data"]["rows_read"] == small_root["rows"]


@pytest.mark.integration
@pytest.mark.parametrize("stage, limit_bytes", [("process", 4096), ("train", 32 * 1024)])
def test_a_full_disk_leaves_the_previous_artifacts_untouched_and_serving(small_root: dict, stage: str,
                                                                       limit_bytes: int) -> None:
    root = small_root["root"]
    before = _snapshot(root)
    result = _cli("--stage", stage, "--raw-dir", str(small_root["raw"]), "--min-user-ratings", "10",
                  "--config", str(small_root["config"]), root=root, limit_bytes=limit_bytes)
    line = _one_line_error(result)
    assert line.startswith("error: ") and "File too large" in line and "free disk space" in line
    assert "previous artifacts are untouched" in line
    assert _snapshot(root) == before, "the previous artifacts changed"
    assert not list(root.glob(".*.tmp-*")), "a half-written folder was left behind"
    client = create_app({"TESTING": True, "ARTIFACTS_DIR": str(paths_config.model_dir(root))}).test_client()
    assert client.get("/readyz").status_code == 200
    user = json.loads((paths_config.model_dir(root) / "user_ids.json").read_text())[0]
    response = client.get(f"/api/users/{user}/recommendations?n=3")
    assert response.status_code == 200 and len(response.get_json()["recommendations"]) == 3
