"""EASE's dense B left out of a model copy and derived again when the server loads it (src/store/artifacts.py:
drop_derivable_item_weights, load_item_weights; deploy/slim_model.py, the image's step), on the really trained
model: the derived B is the fitted one, and the app answers exactly as with the shipped B; a B too costly to
derive is kept and memory-mapped."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from application import create_app
from config import paths_config
from src.models.ease import ItemWeights, derivation_cost, fit_item_weights
from src.store.artifacts import drop_derivable_item_weights, load_model_artifacts, save_item_weights, write_manifest
from src.training.train import prepare_training_data
from tests.conftest import small_training_config

PROJECT_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration

DENSE = {"values": "weighted", "regularisation": 200.0, "neighbours": None, "max_anime": None}
DENOISED = {**DENSE, "dropout": 0.9}  # EDLAE, as the newcomers' own B is fitted


def test_the_derivation_cost_counts_the_gram_and_the_inversion(base_config) -> None:
    assert derivation_cost(users=4, anime=3) == 4 * 3 * 3 // 2 + 3 ** 3
    # the configured limit derives the embedded sample's B (150 users, 6,444 anime at 400 ratings; 2,230 and
    # 7,215 at 50) and keeps the full 2020 size's (39,243 users, 8,000 anime)
    limit = int(base_config["hybrid"]["item_item"]["derive_max_cost"])
    assert derivation_cost(150, 6444) <= derivation_cost(2230, 7215) <= limit < derivation_cost(39243, 8000)


def _fit(trained_root: Path, base_config: dict, settings: dict) -> ItemWeights:
    """A dense EASE fitted as training fits it: on every row of the trained model's data but the test holdout."""
    data = prepare_training_data(small_training_config(base_config), paths_config.processed_dir(trained_root))
    return fit_item_weights(data.known, len(data.user_ids), len(data.anime_ids), settings)


@pytest.fixture(scope="module")
def fitted(trained_root: Path, base_config: dict) -> ItemWeights:
    return _fit(trained_root, base_config, DENSE)


@pytest.fixture(scope="module")
def denoised(trained_root: Path, base_config: dict) -> ItemWeights:
    return _fit(trained_root, base_config, DENOISED)


def _published(trained_root: Path, folder: Path, weights: ItemWeights, derive_max_cost: int) -> Path:
    """A copy of the trained model serving ``weights``, its .npy dropped when derivable within the cost."""
    shutil.copytree(paths_config.model_dir(trained_root).resolve(), folder)
    for name in ("item_weights.npy", "favourites_item_weights.npz", "favourites_item_weights.npy"):
        (folder / name).unlink(missing_ok=True)
    save_item_weights(folder, weights, "item_weights.npz")
    drop_derivable_item_weights(folder, derive_max_cost)
    # EASE alone for everyone, whatever the carve chose for this small model: the answers then hang on B only
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["hybrid"].update(item_item=DENSE, weights={"item_item": 1.0}, favourites_weights={"item_item": 1.0},
                              favourites_item_item=None)
    write_manifest(folder, manifest)
    return folder


def _cost(trained_root: Path, weights: ItemWeights) -> int:
    users = load_model_artifacts(paths_config.model_dir(trained_root)).user_ids
    return derivation_cost(len(users), len(weights.support))


@pytest.mark.parametrize("weights", ["fitted", "denoised"])
def test_a_cheap_dense_ease_is_left_out_and_derived_equal_at_load(trained_root, weights, request, tmp_path):
    fitted = request.getfixturevalue(weights)
    folder = _published(trained_root, tmp_path / "derived", fitted, derive_max_cost=_cost(trained_root, fitted))
    assert not (folder / "item_weights.npy").exists()
    with np.load(folder / "item_weights.npz") as stored:
        assert sorted(stored.files) == ["dropout", "regularisation", "support", "values"]
        assert str(stored["values"]) == "weighted" and float(stored["regularisation"]) == 200.0
        assert float(stored["dropout"]) == {"fitted": 0.0, "denoised": 0.9}[weights]
    derived = load_model_artifacts(folder).item_weights
    assert isinstance(derived.weights, np.ndarray) and not isinstance(derived.weights, np.memmap)
    assert derived.weights.flags.c_contiguous and derived.weights.dtype == np.float32
    np.testing.assert_array_equal(derived.support, fitted.support)
    # the same closed form on the same rows; only BLAS's summation order may differ (threads)
    np.testing.assert_allclose(derived.weights, fitted.weights, rtol=1e-4, atol=1e-6 * np.abs(fitted.weights).max())


def test_a_costly_dense_ease_is_kept_and_memory_mapped(trained_root, fitted, tmp_path):
    folder = _published(trained_root, tmp_path / "shipped", fitted, derive_max_cost=_cost(trained_root, fitted) - 1)
    assert (folder / "item_weights.npy").is_file()
    shipped = load_model_artifacts(folder).item_weights
    assert isinstance(shipped.weights, np.memmap)
    np.testing.assert_array_equal(shipped.weights, fitted.weights)


def test_the_app_answers_the_same_from_a_derived_and_a_shipped_ease(trained_root, fitted, tmp_path):
    answers = []
    for name, limit in (("derived", _cost(trained_root, fitted)), ("shipped", 0)):
        folder = _published(trained_root, tmp_path / name, fitted, derive_max_cost=limit)
        client = create_app({"TESTING": True, "ARTIFACTS_DIR": str(folder)}).test_client()
        users = load_model_artifacts(folder).user_ids[:12]
        anime = [int(a) for a in load_model_artifacts(folder).anime_ids[:5]]
        responses = [client.get(f"/api/users/{int(user)}/recommendations?n=20") for user in users]
        responses.append(client.post("/api/recommendations", json={"liked": anime, "n": 20}))
        assert all(response.status_code == 200 for response in responses)
        answers.append([[item["anime_id"] for item in response.get_json()["recommendations"]]
                        for response in responses])
    assert answers[0] == answers[1]


def test_the_images_slimming_step_leaves_out_the_network_and_a_cheap_ease(trained_root, fitted, tmp_path):
    folder = _published(trained_root, tmp_path / "image", fitted, derive_max_cost=0)  # B kept: the CLI decides
    assert (folder / "model.keras").is_file() and (folder / "item_weights.npy").is_file()
    done = subprocess.run([sys.executable, "-m", "deploy.slim_model", str(folder)], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "item_weights.npy (derived at load)" in done.stdout
    assert not (folder / "model.keras").exists() and not (folder / "item_weights.npy").exists()
    if "similar-anime candidates" in done.stdout:  # the image's budget: those are scored live there
        assert not (folder / "candidate_anime.npy").exists() and (folder / "candidate_users.npy").exists()
    assert isinstance(load_model_artifacts(folder).item_weights.weights, np.ndarray)


def test_the_slimming_step_refuses_a_folder_without_a_model_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "deploy.slim_model", str(tmp_path / "nothing")],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no model in" in done.stderr
