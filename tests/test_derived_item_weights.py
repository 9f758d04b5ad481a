"""EASE's dense B published as its settings and derived again when the server loads the model (src/artifacts.py:
save_item_weights, load_item_weights), on the really trained model: the derived B is the fitted one, and the app
answers exactly as with the shipped B; a B too costly to derive is shipped and memory-mapped."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from application import create_app
from config import paths_config
from src.artifacts import load_model_artifacts, save_item_weights, write_manifest
from src.ease import ItemWeights, fit_item_weights
from src.model_training import prepare_training_data
from tests.conftest import small_training_config

pytestmark = pytest.mark.integration

DENSE = {"values": "weighted", "regularisation": 200.0, "neighbours": None, "max_anime": None}


def test_the_derivation_cost_counts_the_gram_and_the_inversion() -> None:
    dense = ItemWeights(np.zeros((3, 3), np.float32), np.arange(3), "any", 1.0, users=4)
    assert dense.derivation_cost() == 4 * 3 * 3 // 2 + 3 ** 3
    assert ItemWeights(sp.csr_matrix((3, 3), dtype=np.float32), np.arange(3), "any", 1.0, 4).derivation_cost() is None
    assert ItemWeights(np.zeros((3, 3), np.float32), np.arange(3)).derivation_cost() is None  # settings unknown


@pytest.fixture(scope="module")
def fitted(trained_root: Path, base_config: dict) -> ItemWeights:
    """A dense EASE fitted as training fits it: on every row of the trained model's data but the test holdout."""
    data = prepare_training_data(small_training_config(base_config), paths_config.processed_dir(trained_root))
    return fit_item_weights(data.known, len(data.user_ids), len(data.anime_ids), DENSE)


def _published(trained_root: Path, folder: Path, weights: ItemWeights, derive_max_cost: int) -> Path:
    shutil.copytree(paths_config.model_dir(trained_root).resolve(), folder)
    (folder / "item_weights.npy").unlink(missing_ok=True)
    (folder / "favourites_item_weights.npz").unlink(missing_ok=True)
    (folder / "favourites_item_weights.npy").unlink(missing_ok=True)
    save_item_weights(folder, weights, "item_weights.npz", derive_max_cost)
    # EASE alone for everyone, whatever the carve chose for this small model: the answers then hang on B only
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["hybrid"].update(item_item=DENSE, weights={"item_item": 1.0}, favourites_weights={"item_item": 1.0},
                              favourites_item_item=None)
    write_manifest(folder, manifest)
    return folder


def test_a_cheap_dense_ease_is_published_as_its_settings_and_derived_equal_at_load(trained_root, fitted, tmp_path):
    cost = fitted.derivation_cost()
    folder = _published(trained_root, tmp_path / "derived", fitted, derive_max_cost=cost)
    assert not (folder / "item_weights.npy").exists()
    with np.load(folder / "item_weights.npz") as stored:
        assert sorted(stored.files) == ["regularisation", "support", "values"]
    derived = load_model_artifacts(folder).item_weights
    assert isinstance(derived.weights, np.ndarray) and not isinstance(derived.weights, np.memmap)
    assert derived.weights.flags.c_contiguous and derived.weights.dtype == np.float32
    np.testing.assert_array_equal(derived.support, fitted.support)
    # the same closed form on the same rows; only BLAS's summation order may differ (threads)
    np.testing.assert_allclose(derived.weights, fitted.weights, rtol=1e-4, atol=1e-6 * np.abs(fitted.weights).max())


def test_a_costly_dense_ease_is_shipped_and_memory_mapped(trained_root, fitted, tmp_path):
    folder = _published(trained_root, tmp_path / "shipped", fitted, derive_max_cost=fitted.derivation_cost() - 1)
    assert (folder / "item_weights.npy").is_file()
    shipped = load_model_artifacts(folder).item_weights
    assert isinstance(shipped.weights, np.memmap)
    np.testing.assert_array_equal(shipped.weights, fitted.weights)


def test_the_app_answers_the_same_from_a_derived_and_a_shipped_ease(trained_root, fitted, tmp_path):
    answers = []
    for name, limit in (("derived", fitted.derivation_cost()), ("shipped", 0)):
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
