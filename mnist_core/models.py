"""Keras architectures. Every model maps float32 images (N, 28, 28) in [0, 1] to logits (N, 10)."""

from __future__ import annotations

import keras
from keras import layers

from .configs import RunConfig


def build(config: RunConfig) -> keras.Model:
    """A fresh, uncompiled model for `config` (weights drawn from Keras's global seed)."""
    builders = {"mlp": reference_mlp, "cnn": reference_cnn, "improved_cnn": improved_cnn}
    return builders[config.model](config)


def reference_mlp(config: RunConfig) -> keras.Model:
    """The reference MLP: ReLU hidden layers with L2 on their kernels, a linear output layer."""
    model = keras.Sequential(name="mlp")
    model.add(keras.Input(shape=(28, 28)))
    model.add(layers.Flatten())
    for width in config.hidden:
        regularizer = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
        model.add(layers.Dense(width, activation="relu", kernel_regularizer=regularizer))
    model.add(layers.Dense(10))
    return model


def reference_cnn(config: RunConfig) -> keras.Model:
    """The reference CNN: Conv32-MaxPool-Conv64-MaxPool-Conv64-Dense64-Dense32-Dense10."""
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(32, activation="relu"),
            layers.Dense(10),
        ],
        name="cnn",
    )


def _conv_bn(filters: int) -> list:
    return [
        layers.Conv2D(filters, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
    ]


def improved_cnn(config: RunConfig) -> keras.Model:
    """Our CNN: random shifts/rotations/zooms while training, batch norm, dropout.

    The augmentation layers are inactive at inference, so the saved model keeps the
    common (N, 28, 28) -> logits interface.
    """
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Reshape((28, 28, 1)),
            layers.RandomRotation(10 / 360, fill_mode="constant"),
            layers.RandomZoom(0.1, fill_mode="constant"),
            layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
            *_conv_bn(32),
            *_conv_bn(32),
            layers.MaxPooling2D(),
            layers.Dropout(0.1),
            *_conv_bn(64),
            *_conv_bn(64),
            layers.MaxPooling2D(),
            layers.Dropout(0.1),
            layers.Flatten(),
            layers.Dense(128, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dropout(0.3),
            layers.Dense(10),
        ],
        name="improved_cnn",
    )


def learning_rate(config: RunConfig, steps_per_epoch: int):
    """Adam's learning rate: constant for the reference models, cosine decay for ours."""
    if config.model == "improved_cnn":
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.epochs * steps_per_epoch, alpha=0.01
        )
    return config.learning_rate


# Training steps per compiled call. The same batches in the same order: weights after a fit are
# bit-identical to one step per call (tests/test_training.py), only the per-step dispatch goes
# (benchmarks/train_speed.py measures it).
STEPS_PER_CALL = 64


def compile_for_training(model: keras.Model, config: RunConfig, steps_per_epoch: int,
                         steps_per_call: int = STEPS_PER_CALL) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_call,
    )
