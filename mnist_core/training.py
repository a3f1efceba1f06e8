"""Train one model the reference way (one Keras `fit`) and publish any trained model as a run."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from scipy.special import log_softmax
from tqdm.auto import tqdm

from .configs import RunConfig
from .data import MNIST
from .models import build, compile_for_training
from .run_files import METRICS
from .store import Run, RunStore

# After each epoch: (epochs done, {run key: {metric: one value per epoch so far}} of the runs trained)
EpochCallback = Callable[[int, dict], None]


def _scaled(data: MNIST) -> tuple[np.ndarray, np.ndarray]:
    return data.x_train.astype(np.float32) / 255.0, data.x_test.astype(np.float32) / 255.0


def arrays_for(config: RunConfig, data: MNIST) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) as the models take them: float32 in [0, 1]."""
    x_train, x_test = _scaled(data)
    return x_train[:_count(config, data)], labels_for(config, data)[0], x_test, data.y_test


def labels_for(config: RunConfig, data: MNIST) -> tuple[np.ndarray, np.ndarray]:
    """(y_train, y_test) of `arrays_for`, without scaling any image."""
    return data.y_train[:_count(config, data)], data.y_test


def _count(config: RunConfig, data: MNIST) -> int:
    return config.limit or len(data.x_train)


@lru_cache(maxsize=2)
def _scaled_tensors(data: MNIST) -> tuple[tf.Tensor, tf.Tensor]:
    # The NumPy copies are dropped once copied into tensors: a process keeps the images once.
    return tuple(tf.constant(images) for images in _scaled(data))


def tensors_for(config: RunConfig, data: MNIST) -> tuple[tf.Tensor, tf.Tensor]:
    """(x_train, x_test) of `arrays_for` as TensorFlow tensors, made once per dataset: Keras and
    tf.function copy a NumPy array into a new tensor at every call (all 60,000 images: 188 MB,
    0.3-0.4 s here, once per run scored, per fused task and per fit before this)."""
    x_train, x_test = _scaled_tensors(data)
    return x_train[:_count(config, data)], x_test


def train(config: RunConfig, data: MNIST, store: RunStore, progress: bool = True,
          on_epoch: EpochCallback | None = None) -> Run:
    """One `model.fit` with the reference settings, validated on the test set each epoch."""
    y, y_test = labels_for(config, data)
    x, x_test = tensors_for(config, data)
    keras.utils.set_random_seed(config.seed)
    model = build(config, for_training=True)
    compile_for_training(model, config, steps_per_epoch=-(-len(x) // config.batch_size))
    batches = shuffled_batches(x, y, config)
    with tqdm(total=config.epochs, desc=config.label, unit="epoch", disable=not progress,
              leave=False) as bar:
        started = time.perf_counter()
        fitted = model.fit(batches, epochs=config.epochs, shuffle=False, validation_data=(x_test, y_test),
                           verbose=0, callbacks=[EpochProgress(bar, on_epoch, config.key(data.fingerprint))])
        seconds = time.perf_counter() - started
    history = {name: fitted.history[name] for name in METRICS}
    return publish_model(store, config, data, model, history, seconds, trainer="keras_fit")


def shuffled_batches(x, y, config: RunConfig) -> tf.data.Dataset:
    """Batches in a fresh, seeded order every epoch.

    `fit(x, y, shuffle=True)` after `keras.utils.set_random_seed` replays the same order
    every epoch (its shuffle op gets the same seed each time it is rebuilt), which makes
    the reference MLP overfit more; an explicitly seeded, reshuffling dataset does not.

    tf.data's autotuning is off: nothing here is tuned (one fixed prefetch), and with it on a
    `fit` call here often returned only at 5.11 s (10.23, 20.47 s ...) after it began, whatever
    its epoch took (3.3-4.5 s measured inside it): the autotuner wakes at 10, 30, 70 ... ms,
    10 ms x (2^k - 1), and the call waited for its next wake-up. The batches are the same.
    """
    x_tf, y_tf = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    order = tf.data.Dataset.range(len(x)).shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.autotune.enabled = False
    return (order.batch(config.batch_size)
            .map(lambda i: (tf.gather(x_tf, i), tf.gather(y_tf, i)))
            .prefetch(2)
            .with_options(options))


class EpochProgress(keras.callbacks.Callback):
    """After each epoch: advance the tqdm bar and pass the epoch's figures to `on_epoch`."""

    def __init__(self, bar, on_epoch: EpochCallback | None, key: str):
        super().__init__()
        self.bar, self.on_epoch, self.key = bar, on_epoch, key
        self.curves = {name: [] for name in METRICS}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}",
                             val_acc=f"{logs.get('val_accuracy', float('nan')):.4f}")
        self.bar.update(1)
        for name, values in self.curves.items():
            values.append(float(logs.get(name, float("nan"))))
        if self.on_epoch:
            self.on_epoch(epoch + 1, {self.key: {name: list(v) for name, v in self.curves.items()}})


def _loss_and_probabilities(model, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and class probabilities of `model` on `x`, in float64."""
    logits = np.asarray(model.predict(x, batch_size=2000, verbose=0), dtype=np.float64)
    log_probs = log_softmax(logits, axis=1)
    return float(-log_probs[np.arange(len(labels)), labels].mean()), np.exp(log_probs)


def library_versions() -> dict:
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__}


def publish_model(store: RunStore, config: RunConfig, data: MNIST, model, history: dict,
                  seconds: float, trainer: str, extra: dict | None = None) -> Run:
    """Score `model`'s weights on its training images and the test set, then publish it as a run.

    What is scored and saved is a fresh float32 copy (`build(config)`) holding only the
    weights: no optimizer state, and a model trained in bfloat16 is stored and used in float32.
    """
    clean = build(config)
    clean.set_weights(model.get_weights())
    y, y_test = labels_for(config, data)
    x, x_test = tensors_for(config, data)
    train_loss, train_probs = _loss_and_probabilities(clean, x, y)
    test_loss, test_probs = _loss_and_probabilities(clean, x_test, y_test)
    train_accuracy = float((train_probs.argmax(1) == y).mean())
    predicted = test_probs.argmax(1)
    test_accuracy = float((predicted == y_test).mean())
    metrics = {
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "train_error": 1.0 - train_accuracy,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "test_error": 1.0 - test_accuracy,
        "param_count": int(clean.count_params()),
        "epochs_trained": len(history["loss"]),
        "wall_time_s": round(seconds, 2),
        "trainer": trainer,
        "train_images": len(x),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": library_versions(),
        **(extra or {}),
    }
    wrong = np.flatnonzero(predicted != y_test)

    def write(folder: Path) -> None:
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        table = pd.DataFrame({name: history[name] for name in METRICS})
        table.insert(0, "epoch", np.arange(1, len(table) + 1))
        table.to_csv(folder / "history.csv", index=False)
        np.savez_compressed(folder / "predictions.npz", probabilities=test_probs.astype(np.float16))
        np.savez_compressed(
            folder / "errors.npz",
            index=wrong.astype(np.int32),
            image=data.x_test[wrong],
            true=y_test[wrong].astype(np.uint8),
            predicted=predicted[wrong].astype(np.uint8),
            confidence=test_probs[wrong, predicted[wrong]].astype(np.float16),
            true_probability=test_probs[wrong, y_test[wrong]].astype(np.float16),
        )
        clean.save(folder / "model.keras")

    return store.publish(config.key(data.fingerprint), config, data.fingerprint, write)
