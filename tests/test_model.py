"""The NCF model: its layers, its loss, the batches it learns from, and a known answer after real training."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from config.loader import load_config
from config.settings import LearningRateSettings, Settings
from src.models.ncf import build_model, extract_embeddings, learning_rate_schedule, multinomial_nll
from src.store.artifacts import l2_normalise
from src.training.train import (
    FittedNCF,
    UserBatches,
    _training_summary,
    batch_size_for,
    fit_ncf,
    user_targets,
    validation_interval,
)


def test_model_has_the_designed_layers_and_scores_the_whole_catalogue(config):
    model = build_model(7, 11, config)
    assert [layer.name for layer in model.layers] == ["user", "user_embedding", "user_normalised", "catalogue"]
    logits = np.asarray(model.predict(np.arange(7), verbose=0))
    assert logits.shape == (7, 11)
    user_embeddings, anime_embeddings, bias = extract_embeddings(model)
    assert user_embeddings.shape == (7, 16) and anime_embeddings.shape == (11, 16) and bias.shape == (11,)


def test_serving_computes_exactly_the_models_score(config):
    """T · cos(u, a) + bias from the published (normalised) embeddings equals the network's own logits."""
    model = build_model(5, 9, config)
    catalogue = model.get_layer("catalogue")
    catalogue.anime_bias.assign(np.linspace(-1, 1, 9).astype(np.float32))
    user_embeddings, anime_embeddings, bias = extract_embeddings(model)
    served = config["model"]["temperature"] * l2_normalise(user_embeddings) @ l2_normalise(anime_embeddings).T + bias
    np.testing.assert_allclose(np.asarray(model.predict(np.arange(5), verbose=0)), served, rtol=1e-4, atol=1e-4)


def test_multinomial_loss_on_known_answers():
    uniform = np.zeros((1, 4), np.float32)
    assert float(multinomial_nll(np.array([[1, 0, 0, 0]], np.float32), uniform)[0]) == pytest.approx(np.log(4))
    # weights are normalised per user: doubling them changes nothing
    logits = np.array([[2.0, 0.0, -1.0, 0.5]], np.float32)
    once = float(multinomial_nll(np.array([[0.8, 0.5, 0, 0]], np.float32), logits)[0])
    twice = float(multinomial_nll(np.array([[1.6, 1.0, 0, 0]], np.float32), logits)[0])
    assert once == pytest.approx(twice, rel=1e-5)


def test_targets_weigh_ratings_and_unrated_anime():
    ratings = pd.DataFrame({"user_index": [0, 0, 1], "anime_index": [2, 3, 0], "rating": [8, 0, 10]})
    targets = user_targets(ratings, 2, 4, unrated_weight=0.5).toarray()
    np.testing.assert_allclose(targets, [[0, 0, 0.8, 0.5], [1.0, 0, 0, 0]])


def test_batches_are_users_with_targets_reshuffled_every_epoch_and_always_full():
    ratings = pd.DataFrame({"user_index": np.repeat(np.arange(10), 2), "anime_index": np.tile([0, 3], 10),
                            "rating": 7})
    ratings = ratings[ratings["user_index"] != 4]  # a user without targets never appears in a batch
    batches = UserBatches(user_targets(ratings, 10, 5, 0.5), 4, np.random.default_rng(0))
    assert len(batches) == 3 and 4 not in batches.users
    users, targets = batches[2]  # the last batch is filled up from the start of the epoch
    assert len(users) == 4 and targets.shape == (4, 5)
    first = batches.order.copy()
    batches.on_epoch_end()
    assert not np.array_equal(first, batches.order) and set(first) == set(batches.order)


def test_batch_size_leaves_small_data_several_steps_an_epoch(config):
    settings = Settings.of(config)
    assert batch_size_for(settings, 10_000) == config["training"]["batch_size"]
    assert batch_size_for(settings, 150) == 30


def test_original_learning_rate_schedule():
    rate = learning_rate_schedule(LearningRateSettings.from_mapping(
        {"start": 1e-5, "max": 5e-5, "min": 1e-5, "rampup_epochs": 5, "sustain_epochs": 0, "exp_decay": 0.8}))
    assert rate(0) == pytest.approx(1e-5)
    assert rate(4) == pytest.approx(4.2e-5)
    assert rate(5) == pytest.approx(5e-5)
    assert rate(6) == pytest.approx(4e-5 * 0.8 + 1e-5)
    assert rate(100) == pytest.approx(1e-5)


def test_trained_model_ranks_the_held_out_checkerboard_anime_first(config):
    """Even users like even anime, odd users odd ones; each user's held-out anime of their parity comes first."""
    n = 12
    rows, held = [], {}
    for user in range(n):
        liked = list(range(user % 2, n, 2))
        held[user] = liked[(user // 2) % len(liked)]
        rows += [(user, anime, 9) for anime in liked if anime != held[user]]
    ratings = pd.DataFrame(rows, columns=["user_index", "anime_index", "rating"])
    config["training"].update(epochs=60, batch_size=4)
    fitted = fit_ncf(config, user_targets(ratings, n, n, 0.5))
    user_embeddings, anime_embeddings, bias = fitted.embeddings()
    scores = config["model"]["temperature"] * l2_normalise(user_embeddings) @ l2_normalise(anime_embeddings).T + bias
    scores[ratings["user_index"], ratings["anime_index"]] = -np.inf  # what the user already has
    assert scores.argmax(axis=1).tolist() == [held[user] for user in range(n)]
    assert fitted.history["loss"][-1] < fitted.history["loss"][0]


def test_validation_runs_every_few_epochs_at_least_once_and_every_epoch_under_early_stopping():
    training = Settings.of(load_config()).training
    training = dataclasses.replace(training, validation_every=10, early_stopping_patience=None)
    assert [validation_interval(training, epochs) for epochs in (60, 34, 7, 1)] == [10, 10, 7, 1]
    assert validation_interval(dataclasses.replace(training, early_stopping_patience=3), 60) == 1


def test_training_summary_reads_the_best_epoch_from_sparse_validation():
    history = {"loss": [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.4], "val_loss": [3.0, 2.5, 2.7], "learning_rate": [0.1] * 7}
    summary = _training_summary(FittedNCF(None, history, 1.0, validation_every=2), 0.5)  # epochs 2, 4 and 6
    assert summary["epochs_run"] == 7 and summary["best_epoch"] == 4
    assert summary["best_val_loss"] == 2.5 and summary["best_loss"] == 2.0
    no_validation = _training_summary(FittedNCF(None, {"loss": [3.0, 1.0, 2.0]}, 1.0), 0.5)
    assert no_validation["best_epoch"] == 2 and no_validation["best_loss"] == 1.0


def test_validation_every_few_epochs_is_what_the_fit_reports(config):
    targets = user_targets(pd.DataFrame({"user_index": [0, 0, 1, 1, 2], "anime_index": [0, 1, 1, 2, 0],
                                         "rating": [8, 6, 9, 0, 7]}), 3, 3, 0.5)
    config["training"].update(epochs=7, validation_every=3, batch_size=2)
    fitted = fit_ncf(config, targets, targets)
    assert len(fitted.history["loss"]) == 7 and len(fitted.history["val_loss"]) == 2  # after epochs 3 and 6
    assert fitted.validation_every == 3
