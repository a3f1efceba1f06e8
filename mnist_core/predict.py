"""Classify one drawn digit with several models at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from .preprocess import to_mnist


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


# TensorFlow keeps per-thread state that keras.backend.clear_session() throws away; Streamlit
# runs every script run in a new thread and calls clear_session() after it, so the first
# TensorFlow call of every run rebuilt that state, holding the GIL while other sessions
# waited. Every prediction runs in this one long-lived thread instead, where rebuilding is
# cheaper, and callers wait for it without holding the GIL.
_tensorflow_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")


def predictor(models: dict):
    """Every model's forward pass on one (1, 28, 28) batch as one XLA-compiled function.

    Returns a function from a batch to {name: logits}. One call runs all the models: one
    input conversion and one dispatch instead of one per model (benchmarks/dashboard_speed.py
    compares it with one compiled function per model and with Keras's ways). Compiled by XLA
    rather than as a plain tf.function because Streamlit calls keras.backend.clear_session()
    after every script run, which empties TensorFlow's kernel cache: a plain compiled
    function then spends ~15 ms per model rebuilding kernels on every drawing, while an XLA
    executable is kept.
    """
    import tensorflow as tf

    names = tuple(models)
    # A partial, not a lambda: TensorFlow counts traces per code object, and a trace for each
    # of several predictors would look to it like retracing and draw a warning.
    forward = tf.function(partial(_forward, tuple(models.values())), jit_compile=True,
                          autograph=False)

    def predict(batch) -> dict[str, np.ndarray]:
        logits = _tensorflow_thread.submit(lambda: [out.numpy() for out in forward(batch)]).result()
        return dict(zip(names, logits))

    predict(np.zeros((1, 28, 28), np.float32))  # compile now, not on the first drawing
    return predict


def _forward(models, batch):
    return [model(batch, training=False) for model in models]


def classify(image28: np.ndarray, predict) -> dict[str, np.ndarray]:
    """Probabilities (10,) per model name for one preprocessed (28, 28) image, from `predictor`."""
    batch = np.asarray(image28, dtype=np.float32)[None]
    return {name: softmax(np.asarray(logits, dtype=np.float64)[0])
            for name, logits in predict(batch).items()}


def classify_drawing(canvas_image, predict) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Preprocess a canvas image and classify it; (None, {}) when nothing is drawn."""
    image28 = to_mnist(canvas_image)
    if image28 is None:
        return None, {}
    return image28, classify(image28, predict)


def disagreements(probabilities: dict[str, np.ndarray]) -> dict[str, bool]:
    """Which models' top digit differs from the majority's."""
    tops = {name: int(p.argmax()) for name, p in probabilities.items()}
    if not tops:
        return {}
    votes = np.bincount(list(tops.values()), minlength=10)
    majority = int(votes.argmax())
    return {name: top != majority for name, top in tops.items()}
