"""The original design's NCF, kept only for the report's opt-in comparison (``--compare-original``).

Cosine of a user and an anime embedding, then a dense unit, batch normalisation and a sigmoid, trained with
binary cross-entropy on the observed scaled ratings only, with the original warm-up-then-decay learning-rate
schedule (``evaluation.original_objective``). The product's model is src/models/ncf.py.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import pandas as pd
from keras import layers

from config.settings import Settings
from src.models.ncf import learning_rate_schedule


def build_original_model(n_users: int, n_anime: int, size: int, learning_rate: float) -> keras.Model:
    user = keras.Input(name="user", shape=(1,), dtype="int32")
    anime = keras.Input(name="anime", shape=(1,), dtype="int32")
    user_embedding = layers.Embedding(name="user_embedding", input_dim=n_users, output_dim=size)(user)
    anime_embedding = layers.Embedding(name="anime_embedding", input_dim=n_anime, output_dim=size)(anime)
    x = layers.Dot(name="dot_product", normalize=True, axes=2)([user_embedding, anime_embedding])
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1, kernel_initializer="he_normal", name="dense")(x)
    x = layers.BatchNormalization(name="batch_norm")(x)
    output = layers.Activation("sigmoid", name="sigmoid")(x)
    model = keras.Model(inputs=[user, anime], outputs=output, name="anime_ncf_original")
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  metrics=["mae", "mse"])
    return model


def train_original_embeddings(config: Settings | Mapping[str, Any], train_rows: pd.DataFrame, n_users: int,
                              n_anime: int) -> tuple[np.ndarray, np.ndarray]:
    """Train the original design on the rated rows of ``train_rows``; return its (user, anime) embeddings."""
    config = Settings.of(config)
    settings = config.evaluation.original_objective
    keras.utils.set_random_seed(int(config.seed))
    rated = train_rows[train_rows["rating"].to_numpy() > 0]
    low, high = config.processing.rating_min, config.processing.rating_max
    targets = ((rated["rating"].to_numpy(np.float32) - low) / (high - low)).astype(np.float32)
    model = build_original_model(n_users, n_anime, int(config.model.embedding_size),
                                 float(settings.learning_rate.start))
    inputs = {"user": rated["user_index"].to_numpy(np.int32), "anime": rated["anime_index"].to_numpy(np.int32)}
    model.fit(inputs, targets, batch_size=int(settings.batch_size), epochs=int(settings.epochs), verbose=0,
              shuffle=True, callbacks=[keras.callbacks.LearningRateScheduler(
                  learning_rate_schedule(settings.learning_rate))])
    return (model.get_layer("user_embedding").get_weights()[0], model.get_layer("anime_embedding").get_weights()[0])
