"""Classify one drawn digit with several models at once."""

from __future__ import annotations

from functools import partial

import numpy as np
from scipy.special import softmax


def predictor(models: dict, embedding_of: str | None = None):
    """Every model's forward pass on one (1, 28, 28) batch as one XLA-compiled function.

    Returns a function from a batch to ({name: logits}, the penultimate layer's output of
    model `embedding_of`, or None). One call runs all the models: one input conversion and one
    dispatch instead of one per model (benchmarks/dashboard_speed.py compares it with one
    compiled function per model and with Keras's ways). XLA rather than a plain tf.function
    because keras.backend.clear_session() (which Streamlit calls after every script run)
    empties TensorFlow's kernel cache, which a plain compiled function then rebuilds on every
    call, while an XLA executable is kept.
    """
    import keras
    import tensorflow as tf

    names = tuple(models)
    probes = tuple(keras.Model(model.inputs, [model.outputs[0], model.layers[-2].output])
                   if name == embedding_of else model for name, model in models.items())
    # A partial, not a lambda: TensorFlow counts traces per code object, and a trace for each
    # of several predictors would look to it like retracing and draw a warning.
    forward = tf.function(partial(_forward, probes), jit_compile=True, autograph=False)
    position = names.index(embedding_of) if embedding_of in names else None

    def predict(batch) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        outputs = list(forward(batch))
        embedding = None
        if position is not None:
            outputs[position], embedding = outputs[position]
            embedding = embedding.numpy()
        return dict(zip(names, (out.numpy() for out in outputs))), embedding

    predict(np.zeros((1, 28, 28), np.float32))  # compile now, not on the first drawing
    return predict


def _forward(models, batch):
    return [model(batch, training=False) for model in models]


def classify(image28: np.ndarray, predict,
             temperatures: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Probabilities (10,) per model name for one preprocessed (28, 28) image, from `predictor`;
    calibrated (logits divided by the model's temperature) for the models in `temperatures`."""
    logits, _ = predict(np.asarray(image28, dtype=np.float32)[None])
    return probabilities_of(logits, temperatures)


def probabilities_of(logits: dict[str, np.ndarray], temperatures: dict[str, float] | None = None) -> dict:
    temperatures = temperatures or {}
    return {name: softmax(np.asarray(z, dtype=np.float64)[0] / temperatures.get(name, 1.0))
            for name, z in logits.items()}


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
