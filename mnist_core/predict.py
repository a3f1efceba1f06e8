"""Classify one drawn digit with several models at once."""

from __future__ import annotations

from functools import partial

import numpy as np
import tensorflow as tf
from scipy.special import softmax


def predictor(models: dict):
    """Every model's forward pass on one (1, 28, 28) batch as one XLA-compiled function.

    Returns a function from a batch to {name: logits}. One call runs all the models: one
    input conversion and one dispatch instead of one per model (benchmarks/dashboard_speed.py
    compares it with one compiled function per model and with Keras's ways). XLA rather than
    a plain tf.function because keras.backend.clear_session() (which Streamlit calls after
    every script run) empties TensorFlow's kernel cache, which a plain compiled function
    then rebuilds on every call, while an XLA executable is kept.
    """
    names = tuple(models)
    # A partial, not a lambda: TensorFlow counts traces per code object, and a trace for each
    # of several predictors would look to it like retracing and draw a warning.
    forward = tf.function(partial(_forward, tuple(models.values())), jit_compile=True,
                          autograph=False)

    def predict(batch) -> dict[str, np.ndarray]:
        return dict(zip(names, (out.numpy() for out in forward(batch))))

    predict(np.zeros((1, 28, 28), np.float32))  # compile now, not on the first drawing
    return predict


def _forward(models, batch):
    return [model(batch, training=False) for model in models]


def classify(image28: np.ndarray, predict) -> dict[str, np.ndarray]:
    """Probabilities (10,) per model name for one preprocessed (28, 28) image, from `predictor`."""
    batch = np.asarray(image28, dtype=np.float32)[None]
    return {name: softmax(np.asarray(logits, dtype=np.float64)[0])
            for name, logits in predict(batch).items()}


def disagreements(probabilities: dict[str, np.ndarray]) -> dict[str, bool]:
    """Which models' top digit differs from the majority's. A tie (2 against 2) has no majority:
    no model is marked, and the page says how the models split."""
    tops = {name: int(p.argmax()) for name, p in probabilities.items()}
    if not tops:
        return {}
    votes = np.bincount(list(tops.values()), minlength=10)
    majority = int(votes.argmax())
    if (votes == votes[majority]).sum() > 1:
        return {name: False for name in tops}
    return {name: top != majority for name, top in tops.items()}
