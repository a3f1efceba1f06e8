"""Classify one drawn digit with several models at once."""

from __future__ import annotations

from functools import partial

import numpy as np

from .preprocess import to_mnist


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def predictor(model):
    """The model's forward pass on one (1, 28, 28) batch, compiled by XLA; returns logits.

    About 1 ms a call for our CNNs, where an eager call takes 10-25 ms. Compiled by XLA
    rather than as a plain tf.function because Streamlit calls keras.backend.clear_session()
    after every script run, which empties TensorFlow's kernel cache: a plain compiled
    function then spends ~15 ms per model rebuilding kernels on every drawing, while an
    XLA executable is kept.
    """
    import tensorflow as tf

    # A partial, not a lambda: TensorFlow counts traces per code object, and one trace for
    # each of several models would look to it like retracing and draw a warning.
    forward = tf.function(partial(_forward, model), jit_compile=True, autograph=False)
    forward(tf.zeros((1, 28, 28)))  # compile now, not on the first drawing
    return forward


def _forward(model, batch):
    return model(batch, training=False)


def classify(image28: np.ndarray, predictors: dict) -> dict[str, np.ndarray]:
    """Probabilities (10,) per name for one preprocessed (28, 28) image, from `predictor`s."""
    batch = np.asarray(image28, dtype=np.float32)[None]
    return {name: softmax(np.asarray(forward(batch), dtype=np.float64)[0])
            for name, forward in predictors.items()}


def classify_drawing(canvas_image, predictors: dict) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Preprocess a canvas image and classify it; (None, {}) when nothing is drawn."""
    image28 = to_mnist(canvas_image)
    if image28 is None:
        return None, {}
    return image28, classify(image28, predictors)


def disagreements(probabilities: dict[str, np.ndarray]) -> dict[str, bool]:
    """Which models' top digit differs from the majority's."""
    tops = {name: int(p.argmax()) for name, p in probabilities.items()}
    if not tops:
        return {}
    votes = np.bincount(list(tops.values()), minlength=10)
    majority = int(votes.argmax())
    return {name: top != majority for name, top in tops.items()}
