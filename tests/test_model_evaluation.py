"""The evaluation and tuning pipelines on a really trained model: every method, reports, no test-set leakage."""
from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from config import paths_config
from src.artifacts import SPLIT_TEST
from src.model_evaluation import evaluate_model, original_objective_config
from src.tuning import carve_validation_split, set_path, tune
from tests.conftest import small_training_config

pytestmark = pytest.mark.integration
METHODS = {"popularity", "item_knn", "als", "ncf_direct", "content", "user", "hybrid", "original_direct", "original_hybrid"}


@pytest.fixture
def eval_config(base_config):
    config = small_training_config(base_config)
    config["evaluation"]["original_objective"].update(epochs=2, batch_size=4096)
    return config


def test_evaluation_reports_every_method_on_the_same_users(trained_root, tmp_path, eval_config):
    report = evaluate_model(eval_config, model_dir=paths_config.model_dir(trained_root),
                            processed_dir=paths_config.processed_dir(trained_root), reports_dir=tmp_path)
    assert set(report["methods"]) == METHODS
    assert {m["users"] for m in report["methods"].values()} == {150}
    for metrics in report["methods"].values():
        assert 0 <= metrics["recall"] <= metrics["hr"] <= 1 and 0 <= metrics["ndcg"] <= 1
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["methods"] == report["methods"] and written["meta"]["min_user_ratings"] == 400
    assert "| hybrid |" in (tmp_path / "evaluation.md").read_text()
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_is_deterministic(trained_root, tmp_path, eval_config):
    runs = [evaluate_model(eval_config, model_dir=paths_config.model_dir(trained_root), compare_original=False,
                           processed_dir=paths_config.processed_dir(trained_root), reports_dir=tmp_path / str(i))
            for i in range(2)]
    assert runs[0]["methods"] == runs[1]["methods"]


def test_original_objective_is_ratings_only(eval_config):
    original = original_objective_config(eval_config)
    assert original["training"]["objective"] == "rating" and original["training"]["negatives_per_positive"] == 0
    assert original["training"]["learning_rate"]["max"] == pytest.approx(5e-5)
    assert eval_config["training"]["objective"] == "ranking"  # the caller's config is untouched


def test_validation_split_is_carved_from_training_rows_only(trained_root, tmp_path, eval_config):
    processed = paths_config.processed_dir(trained_root)
    carve_validation_split(processed, tmp_path, eval_config)
    original = pd.read_parquet(processed / "ratings.parquet")
    carved = pd.read_parquet(tmp_path / "ratings.parquet")
    key = ["user_index", "anime_index"]
    test_pairs = original.loc[original["split"] == SPLIT_TEST, key]
    assert carved.merge(test_pairs, on=key).empty  # the real test set never enters tuning
    assert len(carved) == (original["split"] != SPLIT_TEST).sum()
    assert (carved["split"] == SPLIT_TEST).sum() > 0.15 * (carved["rating"] > 0).sum()


def test_learning_rate_schedule_scales_with_its_peak(eval_config):
    config = copy.deepcopy(eval_config)
    set_path(config, "training.learning_rate.max", 0.01)
    assert config["training"]["learning_rate"] == {**eval_config["training"]["learning_rate"],
                                                   "max": 0.01, "start": 0.002, "min": 0.002}


def test_tuning_keeps_the_best_setting(trained_root, eval_config):
    eval_config["training"]["epochs"] = 1
    eval_config["tuning"] = {"grid": {"model.embedding_size": [8]}, "user_weights": [0.0, 1.0], "similar_users": [5]}
    result = tune(eval_config, paths_config.processed_dir(trained_root))
    settings = [trial["setting"] for trial in result["trials"]]
    assert settings[:2] == ["current config", "model.embedding_size=8"] and len(settings) == 4
    assert result["best_validation_recall"] == max(trial["recall"] for trial in result["trials"])
    assert result["best"]["serving.similar_users"] == 5
    assert result["best"]["serving.user_weight"] + result["best"]["serving.content_weight"] == pytest.approx(1)
