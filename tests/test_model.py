"""The NCF model, the learning-rate schedule and the negative sampler."""
from __future__ import annotations

import numpy as np
import pytest

from src.base_model import build_model, extract_embeddings
from src.model_training import EpochBatches, NegativeSampler, learning_rate_schedule


def test_model_has_the_designed_layers_and_compiles(config):
    model = build_model(7, 11, config)
    names = [layer.name for layer in model.layers]
    assert names == ["user", "anime", "user_embedding", "anime_embedding", "dot_product", "flatten", "dense",
                     "batch_norm", "sigmoid"]
    assert model.get_layer("dot_product").normalize is True
    assert model.get_layer("user_embedding").output_dim == config["model"]["embedding_size"]
    assert model.loss == "binary_crossentropy"


def test_model_output_is_a_probability(config):
    model = build_model(7, 11, config)
    rng = np.random.default_rng(0)
    users, anime = rng.integers(0, 7, 500), rng.integers(0, 11, 500)
    output = model.predict({"user": users, "anime": anime}, verbose=0)
    assert output.shape == (500, 1)
    assert ((output > 0) & (output < 1)).all()
    user_embeddings, anime_embeddings = extract_embeddings(model)
    assert user_embeddings.shape == (7, 16) and anime_embeddings.shape == (11, 16)


def test_original_learning_rate_schedule(base_config):
    rate = learning_rate_schedule({"start": 1e-5, "max": 5e-5, "min": 1e-5, "rampup_epochs": 5,
                                   "sustain_epochs": 0, "exp_decay": 0.8})
    assert rate(0) == pytest.approx(1e-5)
    assert rate(4) == pytest.approx(4.2e-5)
    assert rate(5) == pytest.approx(5e-5)
    assert rate(6) == pytest.approx(4e-5 * 0.8 + 1e-5)
    assert rate(100) == pytest.approx(1e-5)


def test_negative_sampler_never_emits_a_known_pair():
    rng = np.random.default_rng(3)
    n_users, n_anime = 200, 60
    users = rng.integers(0, n_users, 6000)
    anime = rng.integers(0, n_anime, 6000)
    known = set(zip(users.tolist(), anime.tolist()))
    sampler = NegativeSampler(users, anime, n_anime, np.random.default_rng(0))
    negative_users, negative_anime = sampler.sample(np.repeat(np.arange(n_users), 50))
    pairs = set(zip(negative_users.tolist(), negative_anime.tolist()))
    assert pairs and not pairs & known
    assert len(negative_users) > 0.95 * n_users * 50  # collisions are redrawn, not dropped


def test_a_user_who_saw_everything_gets_no_negatives():
    users = np.zeros(5, dtype=np.int32)
    sampler = NegativeSampler(users, np.arange(5), 5, np.random.default_rng(0))
    negative_users, _ = sampler.sample(np.zeros(10, dtype=np.int32))
    assert len(negative_users) == 0


def test_negatives_are_resampled_every_epoch():
    users = np.repeat(np.arange(20, dtype=np.int32), 5)
    anime = np.tile(np.arange(5, dtype=np.int32), 20)
    targets = np.full(100, 0.8, dtype=np.float32)
    sampler = NegativeSampler(users, anime, 500, np.random.default_rng(0))
    batches = EpochBatches(users, anime, targets, 64, 3, sampler, np.random.default_rng(1))
    first = set(zip(batches.epoch_users[batches.epoch_targets == 0].tolist(), batches.epoch_anime[batches.epoch_targets == 0].tolist()))
    assert len(batches.epoch_users) == 400 and len(batches) == 7
    batches.on_epoch_end()
    second = set(zip(batches.epoch_users[batches.epoch_targets == 0].tolist(), batches.epoch_anime[batches.epoch_targets == 0].tolist()))
    assert first != second
    x, y = batches[0]
    assert set(x) == {"user", "anime"} and len(y) == 64
