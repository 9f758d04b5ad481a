"""The evaluation and the carve's choices on a really trained model: every method, newcomers, no test leakage."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from config import paths_config
from config.loader import ConfigError
from config.settings import Settings
from src.data.splits import SPLIT_TEST
from src.evaluation.runner import evaluate_model
from src.store.artifacts import load_model_artifacts
from src.training.train import prepare_training_data
from src.tuning.hybrid import significantly_better, tune, with_setting
from tests.conftest import small_training_config

pytestmark = pytest.mark.integration
METHODS = {"popularity", "item_knn", "als", "ease", "ncf", "item_item", "user", "embedding", "hybrid"}
NEWCOMER_METHODS = {"favourites", "ncf_fold_in", "popularity", "item_knn", "ease"}


@pytest.fixture
def eval_config(base_config):
    config = small_training_config(base_config)
    config["evaluation"]["original_objective"].update(epochs=2, batch_size=4096)
    return config


def test_evaluation_reports_every_method_and_the_newcomers(trained_root, tmp_path, eval_config):
    report = evaluate_model(eval_config, model_dir=paths_config.model_dir(trained_root),
                            processed_dir=paths_config.processed_dir(trained_root), reports_dir=tmp_path)
    assert set(report["methods"]) == METHODS
    users = {metrics["users"] for metrics in report["methods"].values()}
    assert len(users) == 1 and users.pop() > 100  # every method on the same held-out users
    for metrics in [*report["methods"].values(), *report["newcomers"]["methods"].values()]:
        assert 0 <= metrics["recall"] <= metrics["hr"] <= 1 and 0 <= metrics["ndcg"] <= 1
    assert set(report["newcomers"]["methods"]) == NEWCOMER_METHODS
    assert report["newcomers"]["meta"]["newcomers"] > 10
    new_anime = report["new_anime"]["methods"]
    assert set(new_anime) == {"features", "genre_only", "popularity", "random"}
    assert new_anime["features"]["recall"] > new_anime["random"]["recall"]  # the content path places them
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["methods"] == report["methods"] and written["meta"]["min_user_ratings"] == 400
    assert written["newcomers"]["methods"] == report["newcomers"]["methods"]
    assert set(written["meta"]["baselines"]["users"]) == {"popularity", "item_knn", "als", "ease"}
    markdown = (tmp_path / "evaluation.md").read_text()
    assert "| hybrid |" in markdown and "| favourites |" in markdown and "best baseline" in markdown
    # the products against the best baseline, paired over the same users, as the report prints them
    for section, product, versus in (("methods", "hybrid", written["versus"]),
                                     ("newcomers", "favourites", written["newcomers"]["versus"])):
        methods = report[section] if section == "methods" else report[section]["methods"]
        best = max((name for name in ("popularity", "item_knn", "als", "ease") if name in methods),
                   key=lambda name: methods[name]["recall"])
        assert versus["product"] == product and versus["baseline"] == best
        assert versus["difference"] == pytest.approx(methods[product]["recall"] - methods[best]["recall"], abs=1e-12)
        assert versus["users"] == methods[product]["users"] and versus["standard_error"] >= 0
        assert f"over the same {versus['users']} users: {versus['difference']:+.4f}" in markdown
    assert all(0 < metrics["recall_se"] < 0.2 for metrics in report["methods"].values())
    assert "## New anime" in markdown and written["new_anime"]["methods"] == new_anime
    # the newcomers again, each bringing their whole list: the import ranked as served, beside the same baselines
    imports = report["imported_lists"]
    assert set(imports["methods"]) == {"import", "favourites", "popularity", "item_knn", "ease"}
    assert imports["meta"]["people"] > 10 and written["imported_lists"]["methods"] == imports["methods"]
    assert all(0 <= metrics["recall"] <= metrics["hr"] <= 1 for metrics in imports["methods"].values())
    # the whole list tells more than its top-rated few
    assert imports["methods"]["import"]["recall"] > imports["methods"]["favourites"]["recall"]
    assert imports["meta"]["versus_favourites"]["difference"] == pytest.approx(
        imports["methods"]["import"]["recall"] - imports["methods"]["favourites"]["recall"], abs=1e-12)
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_is_deterministic(trained_root, tmp_path, eval_config):
    runs = [evaluate_model(eval_config, model_dir=paths_config.model_dir(trained_root), compare_original=False,
                           processed_dir=paths_config.processed_dir(trained_root), reports_dir=tmp_path / str(i))
            for i in range(2)]
    assert runs[0]["methods"] == runs[1]["methods"] and runs[0]["newcomers"] == runs[1]["newcomers"]


def test_the_original_design_is_compared_only_when_asked(trained_root, tmp_path, eval_config):
    report = evaluate_model(eval_config, model_dir=paths_config.model_dir(trained_root), compare_original=True,
                            processed_dir=paths_config.processed_dir(trained_root), reports_dir=tmp_path)
    assert {"original_direct", "original_hybrid"} <= set(report["methods"])
    assert eval_config["evaluation"]["compare_original_objective"] is False  # opt-in by default


def test_the_carve_never_touches_the_test_set_or_the_newcomers(trained_root, eval_config):
    processed = paths_config.processed_dir(trained_root)
    data = prepare_training_data(eval_config, processed)
    carved = data.carve(Settings.of(eval_config))
    original = data.ratings
    key = ["user_index", "anime_index"]
    test_pairs = original.loc[original["split"] == SPLIT_TEST, key]
    assert carved.train.merge(test_pairs, on=key).empty  # the real test set never enters tuning
    relevant = pd.DataFrame({"user_index": np.repeat(np.arange(carved.n_users), np.diff(carved.relevant.indptr)),
                             "anime_index": carved.relevant.indices})
    assert relevant.merge(test_pairs, on=key).empty and len(relevant) > 0
    carve_newcomers = set(carved.newcomers.user_ids.tolist())
    assert carve_newcomers and not carve_newcomers & set(carved.train["user_index"].tolist())
    assert not carve_newcomers & set(carved.users.tolist())


def test_the_trained_model_records_the_carves_choice(trained_root):
    hybrid = load_model_artifacts(paths_config.model_dir(trained_root)).manifest["hybrid"]
    assert hybrid["weights"]["item_item"] == 1.0 and hybrid["favourites_weights"]["item_item"] == 1.0
    assert hybrid["item_item"]["regularisation"] == 200 and hybrid["similar_users"] in (20, 50)
    assert hybrid["carve"]["users"] > 50 and hybrid["carve"]["trials"]


def test_a_setting_must_beat_the_current_one_by_more_than_noise():
    rng = np.random.default_rng(0)
    current = rng.random(400)
    assert significantly_better(current + 0.05, current, 2.0)
    assert not significantly_better(current + rng.normal(0.0, 0.2, 400), current, 2.0)  # noise around 0
    assert not significantly_better(current, current, 2.0)
    assert not significantly_better(np.zeros(0), np.zeros(0), 2.0)  # a carve without users chooses nothing


def test_learning_rate_peak_sets_the_flat_schedule(eval_config):
    config = with_setting(Settings.of(eval_config), "training.learning_rate.max", 0.01)
    assert config.training.learning_rate.as_dict() == {**eval_config["training"]["learning_rate"],
                                                       "max": 0.01, "start": 0.01, "min": 0.01}


def test_a_grid_setting_that_does_not_exist_is_refused_by_name(eval_config):
    with pytest.raises(ConfigError, match="model.embeding_size"):
        with_setting(Settings.of(eval_config), "model.embeding_size", 8)


def test_tuning_keeps_the_best_setting(trained_root, eval_config):
    eval_config["training"]["epochs"] = 1
    eval_config["tuning"] = {"grid": {"model.embedding_size": [8]}}
    result = tune(eval_config, prepare_training_data(eval_config, paths_config.processed_dir(trained_root)))
    settings = [trial["setting"] for trial in result["trials"]]
    assert settings == ["current config", "model.embedding_size=8"]
    assert result["best_validation_recall"] == max(trial["recall"] for trial in result["trials"])


def test_the_tuning_pipeline_tunes_the_processed_rows(trained_root, tmp_path, monkeypatch):
    """``python pipeline/tuning_pipeline.py`` end to end (it handed tune a folder instead of the training data)."""
    from pipeline import tuning_pipeline

    (tmp_path / "processed").symlink_to(paths_config.processed_dir(trained_root))
    small = tmp_path / "small.yaml"
    small.write_text("model: {embedding_size: 8, jit_compile: false}\ntraining: {epochs: 1, verbose: 0}\n"
                     "tuning: {grid: {model.embedding_size: [4]}}\n", encoding="utf-8")
    monkeypatch.setenv("ANIME_ARTIFACTS_DIR", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["tuning_pipeline.py", "--config", str(small)])
    tuning_pipeline.main()
    result = json.loads((tmp_path / "reports" / "tuning.json").read_text())
    assert [trial["setting"] for trial in result["trials"]] == ["current config", "model.embedding_size=4"]
    assert result["best"]["model.embedding_size"] in (4, 8)
    assert "| model.embedding_size=4 |" in (tmp_path / "reports" / "tuning.md").read_text()
