"""A look inside one model for one drawing: every layer's activity, which pixels drive its
answer, and the training digits it places nearest.

Saliency is integrated gradients (Sundararajan et al. 2017) from a black image: for the top
digit's logit, and for the top digit's logit minus the runner-up's ("what makes it a 4 rather
than a 9"). It was chosen over occlusion by benchmarks/inside_choices.py, which measures both
for time and for how fast deleting the pixels each ranks first destroys the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import keras
import numpy as np
import tensorflow as tf
from scipy.special import softmax

# Interpolation points. inside_choices.py: 16 and 32 rank pixels alike, but for the improved
# CNN 16 leave the maps' sums a median 6% off the change they account for, 32 steps 2%.
IG_STEPS = 32
EMBED_BATCH = 1000


@dataclass(frozen=True)
class Activity:
    """One layer's output for one image: feature maps (H, W, C) or units (N,)."""

    name: str
    values: np.ndarray

    @property
    def is_maps(self) -> bool:
        return self.values.ndim == 3


@dataclass(frozen=True)
class Look:
    """What one model makes of one image, and why."""

    probabilities: np.ndarray  # (10,)
    top: int
    runner_up: int
    layers: list[Activity]
    drives_top: np.ndarray  # (28, 28) attributions to the top digit's logit
    top_versus_runner_up: np.ndarray  # (28, 28) attributions to logit[top] - logit[runner_up]
    embedding: np.ndarray  # the penultimate layer's output, (D,)
    top_gain: float  # logit[top] here minus on a black image: what drives_top should add up to

    @property
    def completeness(self) -> float:
        """The share of `top_gain` the top map adds up to (1 for an exact integral)."""
        return float(self.drives_top.sum() / self.top_gain) if self.top_gain else 1.0


def shown_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers whose output has passed a non-linearity (conv blocks, hidden dense layers);
    the output layer's logits are the reading itself, shown elsewhere."""
    shown = []
    for layer in model.layers[:-1]:
        activation = getattr(layer, "activation", None)
        if isinstance(layer, keras.layers.ReLU) or (
                activation is not None and activation is not keras.activations.linear):
            shown.append(layer)
    return shown


def layer_title(layer: keras.layers.Layer) -> str:
    """A reader's name for a shown layer: what it is and how big its output is."""
    shape = tuple(layer.output.shape[1:])
    if len(shape) == 3:
        return f"{shape[2]} feature maps, {shape[0]}×{shape[1]}"
    return f"{shape[0]} hidden units"


class Inspector:
    """One model's inside view as one XLA-compiled function of a (28, 28) image."""

    def __init__(self, model: keras.Model, steps: int = IG_STEPS):
        layers = shown_layers(model)
        self.titles = [layer_title(layer) for layer in layers]
        penultimate = model.layers[-2].output
        self._probe = keras.Model(model.inputs, [layer.output for layer in layers]
                                  + [penultimate, model.outputs[0]])
        self._embed = tf.function(partial(_penultimate, self._probe), jit_compile=True,
                                  autograph=False)
        self._look = tf.function(partial(_look, self._probe, steps), jit_compile=True,
                                 autograph=False)
        self.look(np.zeros((28, 28), np.float32))  # compile now, not on the first drawing

    def look(self, image28: np.ndarray) -> Look:
        image = tf.constant(np.asarray(image28, np.float32))
        activations, logits, top, runner_up, drives_top, versus, embedding, gain = self._look(image)
        logits = logits.numpy().astype(np.float64)
        return Look(probabilities=softmax(logits), top=int(top), runner_up=int(runner_up),
                    layers=[Activity(title, values.numpy())
                            for title, values in zip(self.titles, activations)],
                    drives_top=drives_top.numpy(), top_versus_runner_up=versus.numpy(),
                    embedding=embedding.numpy(), top_gain=float(gain))

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Penultimate-layer outputs (N, D) for float32 images (N, 28, 28), in batches."""
        parts = [self._embed(tf.constant(images[start:start + EMBED_BATCH], tf.float32)).numpy()
                 for start in range(0, len(images), EMBED_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _penultimate(probe, images):
    return probe(images, training=False)[-2]


def _look(probe, steps, image):
    """Activations, logits, top two digits, integrated gradients for both targets, embedding.

    The path from black to the image is sampled at the midpoints of `steps` equal segments;
    the black image and the image itself ride along as the last two rows of the same batch.
    """
    alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / steps
    batch = tf.concat([alphas[:, None, None] * image[None], tf.zeros_like(image)[None], image[None]], axis=0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(batch)
        outputs = probe(batch, training=False)
        logits = outputs[-1]
        ranked = tf.math.top_k(logits[-1], k=2).indices
        top_logit = tf.gather(logits, ranked[0], axis=1)
        margin = top_logit - tf.gather(logits, ranked[1], axis=1)
    along_top = tape.gradient(top_logit, batch)[:steps]
    along_margin = tape.gradient(margin, batch)[:steps]
    del tape
    drives_top = image * tf.reduce_mean(along_top, axis=0)
    versus = image * tf.reduce_mean(along_margin, axis=0)
    activations = [output[-1] for output in outputs[:-2]]
    # Not logits[-1, ranked[0]]: a slice at a computed index makes XLA compile anew per value.
    gain = top_logit[-1] - top_logit[-2]
    return activations, logits[-1], ranked[0], ranked[1], drives_top, versus, outputs[-2][-1], gain

