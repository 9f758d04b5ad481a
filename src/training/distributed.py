"""Training the NCF under a ``tf.distribute`` strategy (``fit_ncf(..., strategy=...)``), e.g. across machines with
``tf.distribute.MultiWorkerMirroredStrategy`` (TF_CONFIG names the workers).

Keras 3's ``model.fit`` cannot run under a multi-worker strategy (keras-team/keras#20585: its per-step reduction
of the scalar loss fails with more than one worker), so this is the plain custom loop of TensorFlow's guide:
every replica takes its share of each batch of users, computes the loss scaled to the global batch, and the
optimizer all-reduces the gradients, so every worker ends each step with the same weights. The batches are
``UserBatches``' (same seed, so the same users in the same order on every worker); the global batch is padded to a
multiple of the replicas. The callbacks (learning-rate schedule, early stopping, Comet) are driven as ``fit``
drives them, and the history has the same ``loss``/``val_loss`` keys; batches come in ``fit``'s shuffled order, so
the result equals the single-process fit's up to rounding. The single-process path never comes here.
"""
from __future__ import annotations

import random
from typing import Any

import keras
import numpy as np
import tensorflow as tf


def _global_users(batches: Any, index: int, size: int) -> np.ndarray:
    """The users of step ``index``: ``UserBatches``' slice of its current order, filled up from its start to ``size``
    users (as ``UserBatches`` fills its last batch)."""
    users = batches.order[index * batches.batch_size:(index + 1) * batches.batch_size]
    if len(users) < size:
        users = np.concatenate([users, np.resize(batches.order, size - len(users))])
    return users


def fit_distributed(model: keras.Model, batches: Any, validation: Any, epochs: int, strategy: tf.distribute.Strategy,
                    callbacks: list[keras.callbacks.Callback]) -> dict[str, list[float]]:
    """Train ``model`` (built and compiled in ``strategy.scope()``) for ``epochs``; return its history."""
    replicas = strategy.num_replicas_in_sync
    per_replica = -(-batches.batch_size // replicas)
    size = per_replica * replicas  # the global batch: every replica gets the same number of users
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    loss_fn = model.loss

    def shard(users: np.ndarray, targets: Any) -> Any:
        def value(context: tf.distribute.experimental.ValueContext) -> tuple[tf.Tensor, tf.Tensor]:
            mine = users[context.replica_id_in_sync_group::context.num_replicas_in_sync]
            return tf.constant(mine, tf.int32), tf.constant(targets[mine].toarray(), tf.float32)
        return strategy.experimental_distribute_values_from_function(value)

    def replica_loss(users: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        return tf.nn.compute_average_loss(loss_fn(targets, model(users, training=True)), global_batch_size=size)

    def train_step(users: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = replica_loss(users, targets)
        gradients = tape.gradient(loss, model.trainable_variables)
        # the optimizer all-reduces (sums) the gradients across the replicas
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    def validation_step(users: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        return tf.nn.compute_average_loss(loss_fn(targets, model(users, training=False)), global_batch_size=size)

    @tf.function
    def distributed_train(data: Any) -> tf.Tensor:
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(train_step, args=data), axis=None)

    @tf.function
    def distributed_validation(data: Any) -> tf.Tensor:
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(validation_step, args=data), axis=None)

    def mean_loss(step: Any, source: Any, shuffle: bool) -> float:
        order = list(range(len(source)))
        if shuffle:  # as fit(shuffle=True) orders a PyDataset's batches: Python's random, seeded by fit_ncf
            random.shuffle(order)
        return float(np.mean([float(step(shard(_global_users(source, index, size), source.targets)))
                              for index in order]))

    callback_list = keras.callbacks.CallbackList(callbacks, add_history=True, model=model, epochs=epochs,
                                                 steps=len(batches))
    model.stop_training = False
    batches.on_epoch_end()  # fit reshuffles once before the first epoch too (after peeking at a batch's shapes)
    callback_list.on_train_begin()
    for epoch in range(epochs):
        callback_list.on_epoch_begin(epoch)
        logs = {"loss": mean_loss(distributed_train, batches, shuffle=True)}
        if validation is not None:
            logs["val_loss"] = mean_loss(distributed_validation, validation, shuffle=False)
        batches.on_epoch_end()
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return model.history.history
