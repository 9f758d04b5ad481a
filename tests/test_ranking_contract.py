"""One ranking contract: what the offline evaluation scores is exactly what the API serves.

On a really trained model, for every engine method and a spread of users, the evaluator's top 10 (the lists its
metrics are computed from) equal the API's top 10 for the same user, and the command-line script prints the same
list as the API. Both sides see the same data: the model's artifacts without the held-out rows, which is what the
evaluation's engine is built from.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from config import paths_config
from config.loader import load_config
from src.data.splits import split_interactions
from src.engine.settings import tilted
from src.evaluation.protocol import engine_rankers, recommend_top_k, without_held_out
from src.evaluation.runner import ENGINE_METHODS, engine_for
from src.store.artifacts import load_model_artifacts
from tests.serving_fixtures import write_model_artifacts

pytestmark = pytest.mark.integration
# What the API serves: the chosen mix, and each of its two sides alone (the sliders at 1/0 and 0/1).
SLIDERS = {"hybrid": None, "similar users": (1.0, 0.0), "similar anime": (0.0, 1.0)}


@pytest.fixture(scope="module")
def served_root(trained_root, tmp_path_factory):
    """An artifacts root serving the trained model as the evaluation sees it (held-out rows dropped)."""
    root = tmp_path_factory.mktemp("served")
    artifacts = without_held_out(load_model_artifacts(paths_config.model_dir(trained_root)))
    # the fields as they are (dataclasses.asdict would turn the EASE weights into a dict too)
    fields = {field.name: getattr(artifacts, field.name) for field in dataclasses.fields(artifacts)}
    write_model_artifacts(paths_config.model_dir(root), **fields)
    return root


def test_every_served_mix_ranks_the_same_offline_and_in_the_api(trained_root, served_root):
    from application import create_app

    config = load_config()
    artifacts = load_model_artifacts(paths_config.model_dir(trained_root))
    _, test = split_interactions(artifacts.user_ratings)
    users = np.unique(test["user_index"].to_numpy())[::7]  # a spread of the held-out users
    assert len(users) >= 10
    engine = engine_for(artifacts, config)
    client = create_app({"TESTING": True, "ARTIFACTS_DIR": str(paths_config.model_dir(served_root))}).test_client()
    for name, sliders in SLIDERS.items():
        weights = engine.with_unrated(tilted(engine.settings.weights, sliders))  # as served
        offline = recommend_top_k(lambda rows, k, weights=weights: engine.rank_users(rows, k, weights=weights),
                                  users, k=10, batch_size=1024)
        query = "" if sliders is None else f"&user_weight={sliders[0]:g}&content_weight={sliders[1]:g}"
        for user_row, offline_list in zip(users, offline, strict=True):
            user_id = int(artifacts.user_ids[user_row])
            response = client.get(f"/api/users/{user_id}/recommendations?n=10{query}")
            assert response.status_code == 200
            served = [item["anime_id"] for item in response.get_json()["recommendations"]]
            assert served == [int(engine.anime_ids[j]) for j in offline_list if j >= 0], (name, user_id)


def test_the_report_measures_the_served_mix(trained_root):
    """The evaluator's hybrid is the engine's own ranking with the model's chosen mix, for every user."""
    config = load_config()
    artifacts = load_model_artifacts(paths_config.model_dir(trained_root))
    engine = engine_for(artifacts, config)
    users = np.arange(0, engine.n_users, 5)
    rankers = engine_rankers(engine, list(ENGINE_METHODS.values()))
    served = engine.with_unrated(engine.settings.weights)
    chosen = recommend_top_k(lambda rows, k: engine.rank_users(rows, k, weights=served), users, 10, 1024)
    assert np.array_equal(recommend_top_k(rankers["hybrid"], users, 10, 1024), chosen)


def test_the_command_line_prints_what_the_api_serves(served_root):
    from application import create_app

    model = paths_config.model_dir(served_root)
    engine_user = int(load_model_artifacts(model).user_ids[3])
    client = create_app({"TESTING": True, "ARTIFACTS_DIR": str(model)}).test_client()
    served = client.get(f"/api/users/{engine_user}/recommendations?n=5").get_json()["recommendations"]
    printed = subprocess.run([sys.executable, "-m", "pipeline.prediction_pipeline", str(engine_user), "-n", "5",
                              "--artifacts", str(model)], capture_output=True, text=True, timeout=300, check=True)
    titles = [line.split(". ", 1)[1].split("  (", 1)[0] for line in printed.stdout.splitlines()]
    assert titles == [item["english_name"] or item["name"] for item in served]
