"""What each file of a stored run must hold, checked every time it is read.

A run whose files match its manifest can still hold the wrong things (a forged or buggy
writer): these readers check type, shape and range, and raise UnsafeFile naming the file
and the problem, which the store turns into "this run is missing".
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from pathlib import Path

import numpy as np

from .configs import ConfigError, RunConfig
from .safe_read import UnsafeFile, open_regular, read_bytes, read_json, read_npz

TEST_IMAGES = 10000
HEX64 = re.compile(r"^[0-9a-f]{64}$")
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")  # recorded after every epoch
HISTORY_COLUMNS = ("epoch", *METRICS)
MAX_HISTORY_BYTES = 1 << 20
MAX_MODEL_BYTES = 512 << 20
MAX_ERRORS_BYTES = 16 << 20
FRACTIONS = ("train_accuracy", "train_error", "test_accuracy", "test_error")
NON_NEGATIVE = ("train_loss", "test_loss", "wall_time_s")
COUNTS = ("param_count", "epochs_trained", "train_images")
ERROR_ARRAYS = {"index": ("iu", 1), "image": ("u", 3), "true": ("iu", 1), "predicted": ("iu", 1),
                "confidence": ("f", 1), "true_probability": ("f", 1)}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


ONNX_FILE = "model.onnx"  # optional: model.keras for ONNX Runtime (mnist_core.reading.onnx_export)


def read_manifest(path: Path, expected_files: tuple[str, ...]) -> dict[str, dict]:
    """{file name: {"size": int, "sha256": hex}} for exactly `expected_files`, and model.onnx if
    listed, whose entry also names the sha256 of the model.keras it was made from."""
    manifest = read_json(path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or sorted(set(files) - {ONNX_FILE}) != sorted(expected_files):
        raise UnsafeFile(f"manifest.json must list exactly {sorted(expected_files)} (and {ONNX_FILE})")
    for name, entry in files.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int) and entry["size"] >= 0
                and isinstance(entry.get("sha256"), str) and HEX64.match(entry["sha256"])):
            raise UnsafeFile(f"manifest.json: the entry for {name} needs an integer size and a sha256")
    if ONNX_FILE in files and files[ONNX_FILE].get("keras_sha256") != files["model.keras"]["sha256"]:
        raise UnsafeFile(f"manifest.json: {ONNX_FILE} was not made from this run's model.keras")
    return files


def read_config(path: Path) -> tuple[RunConfig, str]:
    """The run's config and the data fingerprint it was trained on."""
    stored = read_json(path)
    if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
        raise UnsafeFile("config.json must hold an object with a 'config' object")
    fingerprint = stored.get("data_fingerprint")
    if not isinstance(fingerprint, str) or not HEX64.match(fingerprint):
        raise UnsafeFile("config.json: data_fingerprint must be 64 hex characters")
    try:
        return RunConfig.from_dict(stored["config"]), fingerprint
    except (ConfigError, TypeError) as exc:
        raise UnsafeFile(f"config.json: {exc}") from None


def read_metrics(path: Path) -> dict:
    metrics = read_json(path)
    if not isinstance(metrics, dict):
        raise UnsafeFile("metrics.json must hold an object")
    for name in FRACTIONS + NON_NEGATIVE:
        value = metrics.get(name)
        if not _number(value) or value < 0 or (name in FRACTIONS and value > 1):
            kind = "a number from 0 to 1" if name in FRACTIONS else "a finite number >= 0"
            raise UnsafeFile(f"metrics.json: {name} must be {kind}, got {value!r}")
    for name in COUNTS:
        value = metrics.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UnsafeFile(f"metrics.json: {name} must be a whole number >= 1, got {value!r}")
    if not isinstance(metrics.get("trainer"), str):
        raise UnsafeFile(f"metrics.json: trainer must be a string, got {metrics.get('trainer')!r}")
    return metrics


def read_history(path: Path, epochs: int | None = None) -> dict[str, np.ndarray]:
    """Per-epoch columns epoch, loss, accuracy, val_loss, val_accuracy (finite floats)."""
    try:
        rows = list(csv.reader(io.StringIO(read_bytes(path, MAX_HISTORY_BYTES).decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UnsafeFile(f"history.csv is not CSV text ({exc})") from None
    if not rows or tuple(rows[0]) != HISTORY_COLUMNS:
        raise UnsafeFile(f"history.csv must have the columns {', '.join(HISTORY_COLUMNS)}")
    try:
        values = np.array([[float(cell) for cell in row] for row in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise UnsafeFile(f"history.csv holds a value that is not a number ({exc})") from None
    if values.ndim != 2 or values.shape[1] != len(HISTORY_COLUMNS) or not np.isfinite(values).all():
        raise UnsafeFile("history.csv needs one row of five finite numbers per epoch")
    if epochs is not None and len(values) != epochs:
        raise UnsafeFile(f"history.csv has {len(values)} epochs, metrics.json says {epochs}")
    return {name: values[:, i] for i, name in enumerate(HISTORY_COLUMNS)}


def read_predictions(path: Path) -> np.ndarray:
    """Test-set class probabilities, (10000, 10), finite and in [0, 1]."""
    (probabilities,) = read_npz(path, {"probabilities": ("f", 2)}, TEST_IMAGES * 10 * 8).values()
    if probabilities.shape != (TEST_IMAGES, 10):
        raise UnsafeFile(f"predictions.npz: probabilities has shape {probabilities.shape}, "
                         f"expected {(TEST_IMAGES, 10)}")
    if not np.isfinite(probabilities).all() or probabilities.min() < 0 or probabilities.max() > 1.001:
        raise UnsafeFile("predictions.npz: probabilities must be finite and within [0, 1]")
    return probabilities


def read_errors(path: Path, test_error: float | None = None) -> dict[str, np.ndarray]:
    """The misclassified test images: index, image (n, 28, 28) uint8, true, predicted,
    confidence, true_probability; consistent with each other (and with `test_error`)."""
    errors = read_npz(path, ERROR_ARRAYS, MAX_ERRORS_BYTES)
    count = len(errors["index"])
    if any(len(array) != count for array in errors.values()) or errors["image"].shape[1:] != (28, 28):
        raise UnsafeFile("errors.npz: arrays must have one entry per error and images must be 28x28")
    if errors["image"].dtype != np.uint8:
        raise UnsafeFile(f"errors.npz: image must be uint8, got {errors['image'].dtype}")
    index = errors["index"]
    if count and (index.min() < 0 or index.max() >= TEST_IMAGES or len(np.unique(index)) != count):
        raise UnsafeFile(f"errors.npz: index must hold distinct test indices below {TEST_IMAGES}")
    for name in ("true", "predicted"):
        if count and (errors[name].min() < 0 or errors[name].max() > 9):
            raise UnsafeFile(f"errors.npz: {name} must hold digits 0-9, found {errors[name].min()} "
                             f"to {errors[name].max()}")
    if np.any(errors["true"] == errors["predicted"]):
        raise UnsafeFile("errors.npz lists an image whose prediction equals its label")
    for name in ("confidence", "true_probability"):
        values = errors[name]
        if not np.isfinite(values).all() or (count and (values.min() < 0 or values.max() > 1.001)):
            raise UnsafeFile(f"errors.npz: {name} must be finite and within [0, 1]")
    if test_error is not None and count != round(test_error * TEST_IMAGES):
        raise UnsafeFile(f"errors.npz lists {count} errors, metrics.json's test_error says "
                         f"{round(test_error * TEST_IMAGES)}")
    return errors


def check_model_file(path: Path) -> None:
    """A .keras archive (config.json and weights inside); the architecture is checked on load."""
    with open_regular(path, MAX_MODEL_BYTES) as handle:  # OSError here: missing or unreadable
        try:
            with zipfile.ZipFile(handle) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise UnsafeFile(f"model.keras is not a Keras archive ({exc})") from None
    if not {"config.json", "model.weights.h5"} <= names:
        raise UnsafeFile("model.keras lacks config.json or model.weights.h5")


def load_model(path: Path, config: RunConfig):
    """The Keras model in `path` (safe_mode), checked to be `config`'s architecture."""
    import keras  # here, not at the top: reading a run's other files must not load TensorFlow

    from .models import build

    check_model_file(path)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds for a bad archive; all mean "cannot load"
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UnsafeFile(f"model.keras cannot be loaded ({first_line})") from None
    expected = [tuple(w.shape) for w in build(config).weights]
    found = [tuple(w.shape) for w in getattr(model, "weights", [])]
    if found != expected or tuple(model.output_shape) != (None, 10):
        raise UnsafeFile(f"model.keras holds another architecture than this run's "
                         f"{config.label.split(',')[0]} (its weights have other shapes)")
    return model
