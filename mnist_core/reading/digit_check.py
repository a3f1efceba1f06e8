"""Whether a drawing is a digit at all, read from the improved CNN's penultimate layer.

The check is a logistic regression on that layer's output plus two distances to the committed
subset of training digits placed in the same layer (cosine and euclidean, mean of the 8
nearest). It was chosen by benchmarks/not_a_digit.py over maximum probability, energy,
agreement between models, Mahalanobis distance and either distance alone, none of which
catches more than about 70% of non-digits while refusing 1% of digits. It learned from
synthetic non-digits (mnist_core/drawings.py) and redrawn training digits, and from training digits
and non-digits photographed on paper as the photo path cuts them out (mnist_core/photographs.py);
its threshold refuses 0.5% of other redrawn and photographed training digits. The benchmark
measures it on drawings made with other seeds, and on each kind of non-digit left out of its
fitting in turn.

The fitted check and the subset's positions in that layer are committed (CHECK_FILE) with the
sha256 of the model they were made for: a different model file gets no check, not a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..safe_read import UnsafeFile, read_npz
from ..safe_write import replacing
from ..store import COMMITTED_STORE
from .drawings import KINDS, non_digit, redrawn_digit
from .neighbours import TrainingDigits, one_blas_thread
from .preprocess import MIN_EXTENT, ink_extent, to_mnist

CHECK_FILE = COMMITTED_STORE / "not_a_digit.npz"
MODEL_NAME = "improved_cnn"
NEAREST = 8
REFUSED_SHARE = 0.005  # of redrawn training digits kept out of the fit
FIT_SEED = 1000  # the benchmark draws with other seeds


@dataclass(frozen=True)
class DigitCheck:
    model_sha256: str
    bank: np.ndarray  # (N, D) the committed subset's penultimate-layer outputs
    mean: np.ndarray  # (D + 2,) feature scaling
    scale: np.ndarray
    weights: np.ndarray  # (D + 2,)
    intercept: float
    threshold: float  # scores above it are not digits

    def __post_init__(self):  # what every drawing's distances need, computed once
        bank = self.bank.astype(np.float32)
        object.__setattr__(self, "_bank", bank)
        object.__setattr__(self, "_unit_bank", _unit(bank))
        object.__setattr__(self, "_squared_norms", (bank ** 2).sum(1))

    def features(self, embeddings: np.ndarray) -> np.ndarray:
        """The layer's output and the log distances to the nearest training digits, (N, D + 2)."""
        embeddings = np.asarray(embeddings, np.float32)
        with one_blas_thread():
            cosine = 1.0 - _unit(embeddings) @ self._unit_bank.T
            squared = ((embeddings ** 2).sum(1)[:, None] - 2 * embeddings @ self._bank.T
                       + self._squared_norms[None])
        euclidean = np.sqrt(np.maximum(squared, 0.0))
        return np.hstack([embeddings, np.log(_nearest_mean(cosine) + 1e-9)[:, None],
                          np.log(_nearest_mean(euclidean) + 1e-9)[:, None]]).astype(np.float64)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """How unlike a digit each drawing is (logistic regression's log-odds of 'not a digit')."""
        return ((self.features(embeddings) - self.mean) / self.scale) @ self.weights + self.intercept

    def not_a_digit(self, embedding: np.ndarray) -> bool:
        return bool(self.scores(np.asarray(embedding)[None])[0] > self.threshold)


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _nearest_mean(distances: np.ndarray) -> np.ndarray:
    count = min(NEAREST, distances.shape[1])
    return np.partition(distances, count - 1, axis=1)[:, :count].mean(1)


def embedder(model):
    """(N, 28, 28) float images -> the model's penultimate-layer outputs, (N, D) float32."""
    import keras

    probe = keras.Model(model.inputs, model.layers[-2].output)
    return lambda images: np.asarray(probe.predict(images, batch_size=1000, verbose=0), np.float32)


def canvas_images(canvases: list[np.ndarray]) -> np.ndarray:
    """The Draw page's 28x28 images of the canvases that pass its size check."""
    return np.stack([to_mnist(c) for c in canvases if ink_extent(c) >= MIN_EXTENT])


def fit(embed, model_sha256: str, data, subset: TrainingDigits, per_kind: int = 1000,
        digits: int = 6000, held: int = 4000, photographed=None, seed: int = FIT_SEED) -> DigitCheck:
    """Fit the check: `embed` maps (N, 28, 28) float images to the penultimate layer's output.
    Training digits outside the subset, redrawn on the canvas (`digits` to fit, `held` to set the
    threshold), and `photographed` (photographs.fitting_photos: digits and non-digits cut out of
    photos of paper; the digits split in the same shares)."""
    redrawn, others = fitting_drawings(data, subset, digits + held, per_kind, seed)
    shot, shot_others = photographed or (np.zeros((0, 28, 28), np.float32), {})
    split = len(shot) * digits // (digits + held)
    return fit_embedded(model_sha256, embed(subset.floats()),
                        embed(np.concatenate([redrawn[:digits], shot[:split]])),
                        embed(np.concatenate(list(others.values()) + list(shot_others.values()))),
                        embed(np.concatenate([redrawn[digits:], shot[split:]])))


def fitting_drawings(data, subset: TrainingDigits, digits: int, per_kind: int,
                     seed: int = FIT_SEED) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """28x28 images of redrawn training digits outside the subset, and of non-digits by kind."""
    rng = np.random.default_rng(seed)
    outside = np.setdiff1d(np.arange(len(data.x_train)), subset.indices)
    chosen = rng.choice(outside, digits, replace=False)
    redrawn = canvas_images([redrawn_digit(data.x_train[i], rng) for i in chosen])
    return redrawn, {kind: canvas_images([non_digit(kind, rng) for _ in range(per_kind)]) for kind in KINDS}


def fit_embedded(model_sha256: str, bank: np.ndarray, digits: np.ndarray, others: np.ndarray,
                 held: np.ndarray) -> DigitCheck:
    """Fit on penultimate-layer outputs: digits against non-digits; the threshold refuses
    REFUSED_SHARE of `held` (other digits)."""
    from sklearn.linear_model import LogisticRegression

    bank = np.asarray(bank).astype(np.float16)
    draft = DigitCheck(model_sha256, bank, np.zeros(1), np.ones(1), np.zeros(1), 0.0, 0.0)
    fitting = np.vstack([draft.features(digits), draft.features(others)])
    labels = np.r_[np.zeros(len(digits)), np.ones(len(others))]
    mean, scale = fitting.mean(0), fitting.std(0) + 1e-9
    regression = LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced")
    regression.fit((fitting - mean) / scale, labels)
    check = DigitCheck(model_sha256, bank, mean, scale, regression.coef_[0].astype(np.float64),
                       float(regression.intercept_[0]), 0.0)
    threshold = float(np.quantile(check.scores(held), 1 - REFUSED_SHARE))
    return DigitCheck(model_sha256, bank, mean, scale, check.weights, check.intercept, threshold)


def write(check: DigitCheck, path: Path = CHECK_FILE) -> Path:
    with replacing(path) as out:
        np.savez_compressed(out, model_sha256=np.array(check.model_sha256), bank=check.bank,
                            mean=check.mean, scale=check.scale, weights=check.weights,
                            intercept=np.array(check.intercept), threshold=np.array(check.threshold))
    return path


def read(model_sha256: str, path: Path = CHECK_FILE) -> DigitCheck:
    """The committed check, if it was made for this model file (UnsafeFile otherwise)."""
    arrays = read_npz(path, {"model_sha256": ("U", 0), "bank": ("f", 2), "mean": ("f", 1), "scale": ("f", 1),
                             "weights": ("f", 1), "intercept": ("f", 0), "threshold": ("f", 0)},
                      max_bytes=8 * 2 ** 20)
    if str(arrays["model_sha256"]) != model_sha256:
        raise UnsafeFile(f"{path.name} was made for another {MODEL_NAME} model file: refit it with "
                         "`python -m mnist_core data not-a-digit`")
    bank = arrays["bank"]
    size = bank.shape[1] + 2
    if len(bank) < NEAREST or any(arrays[name].shape != (size,) for name in ("mean", "scale", "weights")):
        raise UnsafeFile(f"{path.name}: its arrays do not fit together")
    if not all(np.isfinite(arrays[name]).all() for name in arrays if name != "model_sha256") or \
            (arrays["scale"] <= 0).any():
        raise UnsafeFile(f"{path.name}: holds values that are not finite")
    return DigitCheck(model_sha256, bank, arrays["mean"], arrays["scale"], arrays["weights"],
                      float(arrays["intercept"]), float(arrays["threshold"]))
