"""The neural-collaborative-filtering model: a user embedding and an anime embedding compared by cosine.

    logits(u, a) = T · cos(user_embedding[u], anime_embedding[a]) + bias[a]     over the whole catalogue

trained per user with a softmax over every anime (a multinomial likelihood, as in Mult-VAE and two-tower models):
each user's target is a distribution over the anime on their list, weighted by how they rated them. The
temperature T is a fixed constant: a learned one grows until the model overfits. Serving uses exactly these
pieces (L2-normalised embeddings, the bias and T), so the ``ncf`` component online and offline are the same number,
and "similar anime" and "similar users" are plain cosines of the same embeddings.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from config.settings import LearningRateSettings, Settings


@keras.saving.register_keras_serializable(package="anime")
class CatalogueLogits(layers.Layer):
    """T · normalise(user vector) · normalise(anime embedding)ᵀ + anime bias, for every anime at once."""

    def __init__(self, n_anime: int, size: int, temperature: float, init_stddev: float, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_anime, self.size, self.temperature = n_anime, size, float(temperature)
        self.init_stddev, self.seed = float(init_stddev), seed

    def build(self, input_shape: Any) -> None:
        self.anime_embedding = self.add_weight(
            name="anime_embedding", shape=(self.n_anime, self.size),
            initializer=keras.initializers.RandomNormal(stddev=self.init_stddev, seed=self.seed))
        self.anime_bias = self.add_weight(name="anime_bias", shape=(self.n_anime,), initializer="zeros")

    def call(self, user_vectors: Any) -> Any:
        anime = ops.normalize(self.anime_embedding, axis=-1)
        return self.temperature * ops.matmul(user_vectors, ops.transpose(anime)) + self.anime_bias

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_anime": self.n_anime, "size": self.size, "temperature": self.temperature,
                "init_stddev": self.init_stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="anime")
def multinomial_nll(targets: Any, logits: Any) -> Any:
    """−Σ_a y_a · log softmax(logits)_a / Σ_a y_a per user: the weighted log-likelihood of the user's list."""
    return -ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1) / ops.maximum(ops.sum(targets, axis=-1), 1e-9)


def build_model(n_users: int, n_anime: int, config: Settings | Mapping[str, Any]) -> keras.Model:
    """Build and compile the NCF model; every size and setting comes from ``config``."""
    config = Settings.of(config)
    model_config = config.model
    size, stddev, seed = int(model_config.embedding_size), float(model_config.init_stddev), int(config.seed)
    user = keras.Input(name="user", shape=(), dtype="int32")
    user_vector = layers.Embedding(n_users, size, name="user_embedding",
                                   embeddings_initializer=keras.initializers.RandomNormal(stddev=stddev,
                                                                                          seed=seed))(user)
    user_vector = layers.UnitNormalization(axis=-1, name="user_normalised")(user_vector)
    logits = CatalogueLogits(n_anime, size, float(model_config.temperature), stddev, seed + 1,
                             name="catalogue")(user_vector)
    model = keras.Model(user, logits, name="anime_ncf")
    # XLA fuses the catalogue-wide matrix product, softmax and Adam's updates: several times faster on a CPU.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=float(config.training.learning_rate.start)),
                  loss=multinomial_nll, jit_compile=bool(model_config.jit_compile))
    return model


def extract_embeddings(model: keras.Model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The trained (user embeddings, anime embeddings, anime bias), raw (not yet normalised)."""
    catalogue = model.get_layer("catalogue")
    return (np.asarray(model.get_layer("user_embedding").get_weights()[0], dtype=np.float32),
            np.asarray(catalogue.anime_embedding.numpy(), dtype=np.float32),
            np.asarray(catalogue.anime_bias.numpy(), dtype=np.float32))


def learning_rate_schedule(settings: LearningRateSettings) -> Callable[[int], float]:
    """The original schedule: linear ramp from ``start`` to ``max``, optional plateau, then exponential decay
    of the excess over ``min``."""
    start, peak, floor = float(settings.start), float(settings.max), float(settings.min)
    rampup, sustain = int(settings.rampup_epochs), int(settings.sustain_epochs)
    decay = float(settings.exp_decay)

    def rate(epoch: int) -> float:
        if epoch < rampup:
            return (peak - start) / rampup * epoch + start
        if epoch < rampup + sustain:
            return peak
        return (peak - floor) * decay ** (epoch - rampup - sustain) + floor

    return rate
