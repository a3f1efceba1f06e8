"""The training digits a model places nearest a drawing, in its penultimate layer.

Searched among a committed subset (`SUBSET_FILE`, 1,000 per digit, about 2 MB) at once, and,
when MNIST is at hand, among all 60,000 training digits once they are placed (in the
background: `Search`). The subset's places in each named model's layer are committed too
(`embeddings_file`), each with the sha256 of the model file it was computed with; another
model file has them computed afresh. Distance is cosine: benchmarks/inside_choices.py
measures how often the 8 nearest training digits carry the test digit's label under either
distance.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from ..safe_read import UnsafeFile, read_npz
from ..safe_write import replacing
from ..store import COMMITTED_STORE

SUBSET_FILE = COMMITTED_STORE / "neighbours" / "training_subset.npz"
# "subset": search the committed subset only, never place all 60,000 (a small server; the tests)
SEARCH_ENV = "MNIST_LAB_NEIGHBOURS"
PER_DIGIT = 1000
TRAINING_SIZE = 60000
NEIGHBOURS = 8
_BLAS = ThreadpoolController()


def one_blas_thread():
    """A context in which NumPy's BLAS uses one thread. For the products made on every stroke:
    after a multi-threaded call OpenBLAS's idle thread spins ~100 ms, beside the model work that
    follows (the look inside a model after a reading took 59-63 ms, 32 ms with this, 2 cores)."""
    return _BLAS.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class TrainingDigits:
    images: np.ndarray  # uint8 (N, 28, 28)
    labels: np.ndarray  # (N,) digits 0-9
    indices: np.ndarray  # (N,) each image's position in MNIST's training set
    source: str  # for a reader: which digits these are

    def floats(self) -> np.ndarray:
        return self.images.astype(np.float32) / 255

    def floats_of(self, start: int, stop: int) -> np.ndarray:
        return self.images[start:stop].astype(np.float32) / 255


def all_training_digits(data) -> TrainingDigits:
    """MNIST's whole training set."""
    return TrainingDigits(data.x_train, data.y_train, np.arange(len(data.y_train)),
                          f"all {len(data.y_train):,} MNIST training digits")


def choose_subset(labels: np.ndarray, per_digit: int = PER_DIGIT, seed: int = 0) -> np.ndarray:
    """Sorted training-set positions of `per_digit` images of each digit, drawn at random."""
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == digit), per_digit, replace=False) for digit in range(10)]
    return np.sort(np.concatenate(chosen))


def write_subset(data, path: Path = SUBSET_FILE) -> Path:
    """Write the committed subset from MNIST (`python -m mnist_core neighbours-subset`)."""
    indices = choose_subset(data.y_train)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as out:
        np.savez_compressed(out, images=data.x_train[indices], labels=data.y_train[indices],
                            indices=indices.astype(np.int32))
    return path


def read_subset(path: Path = SUBSET_FILE) -> TrainingDigits:
    """The committed subset, checked: uint8 images, labels 0-9, distinct training positions."""
    arrays = read_npz(path, {"images": ("u", 3), "labels": ("u", 1), "indices": ("i", 1)},
                      max_bytes=TRAINING_SIZE * 28 * 28)
    images, labels, indices = arrays["images"], arrays["labels"], arrays["indices"]
    count = len(images)
    if images.shape[1:] != (28, 28) or images.dtype != np.uint8 or count == 0:
        raise UnsafeFile(f"{path.name}: images have shape {images.shape}, expected (N, 28, 28) uint8")
    if labels.shape != (count,) or indices.shape != (count,):
        raise UnsafeFile(f"{path.name}: {count} images but {len(labels)} labels and {len(indices)} indices")
    if labels.max() > 9:
        raise UnsafeFile(f"{path.name}: holds label {labels.max()}, expected 0-9")
    if indices.min() < 0 or indices.max() >= TRAINING_SIZE or len(np.unique(indices)) != count:
        raise UnsafeFile(f"{path.name}: indices must be distinct positions in the 60,000 training images")
    return TrainingDigits(images, labels, indices.astype(np.int64),
                          f"a committed subset of {count:,} MNIST training digits")


class Neighbours:
    """Nearest training digits by cosine distance between penultimate-layer outputs."""

    def __init__(self, embeddings: np.ndarray, digits: TrainingDigits):
        if len(embeddings) != len(digits.labels):
            raise ValueError(f"{len(embeddings)} embeddings for {len(digits.labels)} digits")
        self.digits = digits
        self._unit = _unit_rows(np.asarray(embeddings, np.float32))

    def nearest(self, embedding: np.ndarray, count: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
        """Positions in `digits` of the `count` nearest, nearest first, and their cosine distances."""
        with one_blas_thread():
            distances = 1.0 - self._unit @ _unit_rows(np.asarray(embedding, np.float32)[None])[0]
        count = min(count, len(distances))
        closest = np.argpartition(distances, count - 1)[:count]
        closest = closest[np.argsort(distances[closest], kind="stable")]
        return closest, distances[closest]


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    # A layer of dead ReLUs gives a zero vector: it stays zero, at distance 1 from everything.
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def search_all_wanted() -> bool:
    return os.environ.get(SEARCH_ENV, "all").strip().lower() != "subset"


def embeddings_file(run_key: str) -> Path:
    return SUBSET_FILE.parent / f"embeddings_{run_key[:16]}.npz"


def write_embeddings(path: Path, embeddings: np.ndarray, model_sha256: str) -> Path:
    with replacing(path) as out:
        np.savez_compressed(out, embeddings=np.asarray(embeddings).astype(np.float16),
                            model_sha256=np.array(model_sha256))
    return path


def read_embeddings(path: Path, model_sha256: str, count: int) -> np.ndarray:
    """The committed subset's places in a model's layer, if made with this model file."""
    arrays = read_npz(path, {"embeddings": ("f", 2), "model_sha256": ("U", 0)}, max_bytes=32 * 2 ** 20)
    if str(arrays["model_sha256"]) != model_sha256:
        raise UnsafeFile(f"{path.name} was made with another model file")
    embeddings = arrays["embeddings"].astype(np.float32)
    if len(embeddings) != count or not np.isfinite(embeddings).all():
        raise UnsafeFile(f"{path.name}: {len(embeddings)} rows for {count} digits, or values not finite")
    return embeddings


_last_reading = [float("-inf")]  # when a drawing was last read, by any visitor (time.monotonic)


def busy() -> None:
    """Note that a drawing is being read now: placing training digits pauses for a while."""
    _last_reading[0] = time.monotonic()


class Search:
    """Nearest training digits, first among the committed subset, then, once `upgrade` has
    placed all of MNIST's training digits (in a thread of its own, in batches, so a stroke is
    never held up by it), among all 60,000. `current` is whichever is ready."""

    def __init__(self, subset: Neighbours):
        self.current = subset
        self.upgrading = False
        self.problem: str | None = None
        self.placed, self.total = 0, 0  # training digits placed so far, of how many

    def upgrade(self, embed, training_digits, batch: int = 100, share: float = 0.5,
                quiet_s: float = 2.0) -> None:
        """Place the digits `training_digits()` reads with `embed`, from a thread of its own, in
        small batches, only while no drawing has been read for `quiet_s` seconds (`busy()`), and
        then with at most `share` of the time: a stroke waits for one batch at most (tens of
        milliseconds). Nothing of it happens in the caller's thread."""
        def place() -> None:
            try:
                digits = training_digits()  # read here, not in the view that asked for them
                self.total = len(digits.labels)
                parts = []
                for start in range(0, len(digits.labels), batch):
                    while time.monotonic() - _last_reading[0] < quiet_s:
                        time.sleep(0.25)
                    started = time.perf_counter()
                    parts.append(embed(digits.floats_of(start, start + batch)))
                    self.placed = min(start + batch, self.total)
                    time.sleep((time.perf_counter() - started) * (1 / share - 1))
                self.current = Neighbours(np.concatenate(parts), digits)
            except Exception as exc:  # noqa: BLE001 - said on the page; the subset stays in use
                self.problem = f"placing all training digits failed ({type(exc).__name__}: {exc})"
            finally:
                self.upgrading = False

        self.upgrading = True
        threading.Thread(target=place, name="place-training-digits", daemon=True).start()
