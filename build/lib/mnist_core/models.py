"""Keras architectures. Every model maps float32 images (N, 28, 28) in [0, 1] to logits (N, 10)."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from .configs import RunConfig


def build(config: RunConfig, for_training: bool = False) -> keras.Model:
    """A fresh, uncompiled model for `config` (weights drawn from Keras's global seed).

    `for_training`: the improved CNN as it trains (in `config.precision`, with fused batch
    norm). Otherwise every model is plain float32 Keras layers, as it is stored, scored and
    used; the weights are the same list either way.
    """
    if config.model == "improved_cnn":
        return improved_cnn(config, for_training)
    builders = {"mlp": reference_mlp, "cnn": reference_cnn}
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


class FusedBatchNormalization(layers.BatchNormalization):
    """Keras's batch norm, computed in training by TensorFlow's fused kernel.

    Keras normalizes with separate ops (moments, then scale and shift), several passes over
    each activation; the fused kernel takes one, which makes the improved CNN's step ~1.3x
    faster in float32 and lets bfloat16 pay off (tests/test_training.py checks it against
    Keras's layer). Used only while training: stored models hold Keras's own layer.
    """

    def call(self, inputs, training=None, mask=None):
        rank = len(inputs.shape)
        if not (training and self.trainable) or mask is not None or rank not in (2, 4) \
                or self.axis not in (-1, rank - 1):
            return super().call(inputs, training=training, mask=mask)
        x = inputs if rank == 4 else inputs[:, None, None, :]
        channels = x.shape[-1]
        scale = self.gamma if self.gamma is not None else tf.ones([channels])
        offset = self.beta if self.beta is not None else tf.zeros([channels])
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, tf.cast(scale, "float32"), tf.cast(offset, "float32"), epsilon=self.epsilon,
            is_training=True)
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
        variance = variance * (count - 1) / count  # the kernel returns it Bessel-corrected; Keras doesn't
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1 - self.momentum))
        return y if rank == 4 else y[:, 0, 0, :]


def improved_cnn(config: RunConfig, for_training: bool = False) -> keras.Model:
    """Our CNN: random shifts/rotations/zooms while training, batch norm, dropout.

    The augmentation layers are inactive at inference, so the saved model keeps the
    common (N, 28, 28) -> logits interface. Built `for_training`, the layers between the
    augmentation and the logits compute in `config.precision` (variables stay float32) and
    batch norm is fused.
    """
    dtype = config.precision if for_training else "float32"
    norm = FusedBatchNormalization if for_training else layers.BatchNormalization

    def conv_bn(filters: int) -> list:
        return [layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=dtype),
                norm(dtype=dtype), layers.ReLU(dtype=dtype)]

    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Reshape((28, 28, 1)),
            layers.RandomRotation(10 / 360, fill_mode="constant"),
            layers.RandomZoom(0.1, fill_mode="constant"),
            layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
            *conv_bn(32),
            *conv_bn(32),
            layers.MaxPooling2D(dtype=dtype),
            layers.Dropout(0.1, dtype=dtype),
            *conv_bn(64),
            *conv_bn(64),
            layers.MaxPooling2D(dtype=dtype),
            layers.Dropout(0.1, dtype=dtype),
            layers.Flatten(dtype=dtype),
            layers.Dense(128, use_bias=False, dtype=dtype),
            norm(dtype=dtype),
            layers.ReLU(dtype=dtype),
            layers.Dropout(0.3, dtype=dtype),
            layers.Dense(10),  # logits in float32
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
