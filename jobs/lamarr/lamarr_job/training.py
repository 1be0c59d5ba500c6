"""Train the small Keras models of the demo model set.

Every model is a ``keras.Sequential`` of ``Dense`` layers, the subset that
scikinC 0.2.9 transpiles. Input standardisation and output de-standardisation
are folded into the first and last layers after training, so the exported
network takes raw features and returns physical values.

Generative models map ``(condition, noise)`` to an output sample. They are
trained by minimising the energy score (a strictly proper scoring rule, as in
"engression"), which needs no critic and converges in seconds on a CPU; the
deployed object is the same as a GAN generator's (Keras Sequential fed with the
conditions and standard-normal noise, run by SQLamarr's GenerativePlugin).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import tensorflow as tf

Array = npt.NDArray[np.float64]


def _standardise(x: Array) -> tuple[Array, Array]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def _mlp(n_in: int, n_out: int, hidden: int, out_activation: str) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input(shape=(n_in,)),
            keras.layers.Dense(hidden, activation="tanh"),
            keras.layers.Dense(hidden, activation="tanh"),
            keras.layers.Dense(n_out, activation=out_activation),
        ]
    )


def fold_scaling(
    model: keras.Sequential,
    in_mean: Array,
    in_scale: Array,
    out_mean: Array | None = None,
    out_scale: Array | None = None,
) -> None:
    """Fold ``(x - in_mean)/in_scale`` and ``y*out_scale + out_mean`` into the weights.

    Parameters
    ----------
    model
        A trained Sequential of Dense layers (modified in place).
    in_mean, in_scale
        Standardisation of the inputs used in training.
    out_mean, out_scale
        De-standardisation of a linear output layer, or ``None`` to keep it.
    """
    first = model.layers[0]
    kernel, bias = first.get_weights()
    kernel_raw = kernel / in_scale[:, None]
    bias_raw = bias - (in_mean / in_scale) @ kernel
    first.set_weights([kernel_raw.astype(np.float32), bias_raw.astype(np.float32)])
    if out_mean is not None and out_scale is not None:
        last = model.layers[-1]
        kernel, bias = last.get_weights()
        last.set_weights(
            [
                (kernel * out_scale[None, :]).astype(np.float32),
                (bias * out_scale + out_mean).astype(np.float32),
            ]
        )


def train_classifier(
    x: Array, label: Array, epochs: int, hidden: int = 24, seed: int = 0
) -> keras.Sequential:
    """Train a binary classifier whose sigmoid output estimates P(label = 1 | x)."""
    keras.utils.set_random_seed(seed)
    mean, scale = _standardise(x)
    model = _mlp(x.shape[1], 1, hidden, "sigmoid")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    xs = ((x - mean) / scale).astype(np.float32)
    model.fit(xs, label.astype(np.float32), batch_size=1024, epochs=epochs, verbose=0)
    fold_scaling(model, mean, scale)
    return model


def train_regression(
    x: Array, y: Array, epochs: int, hidden: int = 24, seed: int = 0
) -> keras.Sequential:
    """Train a mean-squared-error regression of ``y`` on ``x`` (linear outputs)."""
    keras.utils.set_random_seed(seed)
    in_mean, in_scale = _standardise(x)
    out_mean, out_scale = _standardise(y)
    model = _mlp(x.shape[1], y.shape[1], hidden, "linear")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    model.fit(
        ((x - in_mean) / in_scale).astype(np.float32),
        ((y - out_mean) / out_scale).astype(np.float32),
        batch_size=1024,
        epochs=epochs,
        verbose=0,
    )
    fold_scaling(model, in_mean, in_scale, out_mean, out_scale)
    return model


def train_generator(
    cond: Array,
    y: Array,
    n_random: int,
    steps: int,
    hidden: int = 48,
    batch: int = 1024,
    seed: int = 0,
) -> keras.Sequential:
    """Train a conditional generator ``G(cond, noise) -> y`` with the energy score.

    Parameters
    ----------
    cond, y
        Conditions and target samples, one row per particle.
    n_random
        Dimension of the standard-normal noise appended to the conditions.
    steps
        Number of optimiser steps.
    hidden, batch, seed
        Width of the hidden layers, batch size, seed of every random choice.

    Returns
    -------
    keras.Sequential
        The generator; its inputs are ``[cond..., noise...]`` in raw units.
    """
    keras.utils.set_random_seed(seed)
    c_mean, c_scale = _standardise(cond)
    y_mean, y_scale = _standardise(y)
    cs = tf.constant(((cond - c_mean) / c_scale).astype(np.float32))
    ys = tf.constant(((y - y_mean) / y_scale).astype(np.float32))
    n = cond.shape[0]
    model = _mlp(cond.shape[1] + n_random, y.shape[1], hidden, "linear")
    optimizer = keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=steps, alpha=0.05)
    )
    gen = tf.random.Generator.from_seed(seed)

    def _norm(d: Any) -> Any:
        return tf.sqrt(tf.reduce_sum(d * d, axis=1) + 1e-12)

    @tf.function  # type: ignore[untyped-decorator]
    def step() -> Any:
        idx = gen.uniform((batch,), 0, n, dtype=tf.int64)
        c = tf.gather(cs, idx)
        target = tf.gather(ys, idx)
        with tf.GradientTape() as tape:
            y1 = model(tf.concat([c, gen.normal((batch, n_random))], axis=1), training=True)
            y2 = model(tf.concat([c, gen.normal((batch, n_random))], axis=1), training=True)
            loss = tf.reduce_mean(
                0.5 * (_norm(target - y1) + _norm(target - y2)) - 0.5 * _norm(y1 - y2)
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    for _ in range(steps):
        step()
    in_mean = np.concatenate([c_mean, np.zeros(n_random)])
    in_scale = np.concatenate([c_scale, np.ones(n_random)])
    fold_scaling(model, in_mean, in_scale, y_mean, y_scale)
    return model


def predict(model: keras.Sequential, x: Array) -> Array:
    """Evaluate a model on raw inputs (for checks against the compiled version)."""
    return np.asarray(model.predict(x.astype(np.float32), verbose=0), dtype=np.float64)
