"""Load real MNIST (60,000 train / 10,000 test, uint8) from wherever it is, and validate it."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import platformdirs

from .safe_read import UnsafeFile, open_regular, read_npz

ENV_VAR = "MNIST_PATH"
KERAS_CACHE = Path("~/.keras/datasets/mnist.npz").expanduser()
DOWNLOADED = Path(platformdirs.user_data_dir("mnist-lab")) / "mnist.npz"  # where download_mnist() saves
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
EXPECTED_SHAPES = {
    "x_train": (60000, 28, 28),
    "y_train": (60000,),
    "x_test": (10000, 28, 28),
    "y_test": (10000,),
}

# fingerprint of the standard MNIST arrays: lets a machine without the files find committed runs
STANDARD_FINGERPRINT = "52cd6c10ae77107af32269dd9d10ca19c1b749e83235a0c75e2f0729ebeaf141"

# how many test images each digit has in standard MNIST (checked against the data by the tests)
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)


# Real MNIST has every digit in 8.9% to 11.4% of either split's labels and no blank image;
# data far from that is refused as not MNIST (a placeholder of zeros would score 100%).
MIN_CLASS_SHARE = 0.01
MAX_BLANK_SHARE = 0.01
MAX_IDX_BYTES = 64 << 20  # the largest IDX file, training images, is 47 MB


class MNISTError(ValueError):
    """MNIST could not be found or is not valid MNIST."""


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class MNIST:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    # Hash of the arrays themselves (not the file), so every source gives the same run keys.
    fingerprint: str


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def load_mnist(path: str | os.PathLike | None = None) -> MNIST:
    """Return MNIST from `path`, else $MNIST_PATH, else the copy `python -m mnist_core data download`
    (or the dashboard's Get MNIST) saved, else the Keras cache, else Keras's download.

    `path` (or $MNIST_PATH) may be a Keras-layout .npz file or a folder holding the four
    original IDX files, gzipped or not.
    """
    if path is not None:
        return _load_cached(str(Path(path).expanduser().resolve()))
    if os.environ.get(ENV_VAR):
        return _load_cached(str(Path(os.environ[ENV_VAR]).expanduser().resolve()))
    for local in (DOWNLOADED, KERAS_CACHE):
        if local.is_file():
            return _load_cached(str(local))
    return _download_with_keras()


def mnist_available(path: str | os.PathLike | None = None) -> bool:
    """True if load_mnist() would find a local copy without downloading."""
    candidate = path or os.environ.get(ENV_VAR)
    if candidate:
        return Path(candidate).expanduser().exists()
    return DOWNLOADED.is_file() or KERAS_CACHE.is_file()


def read_mnist(path: str | os.PathLike) -> MNIST:
    """MNIST read and validated from `path` (.npz or IDX folder) every time; load_mnist caches it."""
    source = Path(path)
    if source.is_dir():
        arrays = _read_idx_folder(source)
    elif source.is_file():
        arrays = _read_npz(source)
    else:
        raise MNISTError(
            f"MNIST not found at {source}: set {ENV_VAR} to a Keras-layout mnist.npz "
            "or a folder with the four IDX files"
        )
    return mnist_from_arrays(arrays, str(source))


_load_cached = lru_cache(maxsize=4)(read_mnist)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    expected = {name: ("u", len(shape)) for name, shape in EXPECTED_SHAPES.items()}
    try:
        return read_npz(path, expected, max_bytes=60000 * 28 * 28, follow_links=True)
    except UnsafeFile as exc:
        raise MNISTError(
            f"{path}: {str(exc).removeprefix(path.name + ': ')}; {ENV_VAR} must point to a "
            "Keras-layout mnist.npz (uint8 x_train, y_train, x_test, y_test)"
        ) from None


def _read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for name, stem in IDX_FILES.items():
        candidates = [folder / stem, folder / f"{stem}.gz"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise MNISTError(
                f"{folder} has no {stem}[.gz]: {ENV_VAR} folders must hold the four MNIST IDX files"
            )
        arrays[name] = _read_idx(found, EXPECTED_SHAPES[name])
    return arrays


def _read_idx(path: Path, expected_shape: tuple[int, ...]) -> np.ndarray:
    """An IDX file's array, after its header is checked against `expected_shape` and, for an
    uncompressed file, the header's size against the file's: nothing is read on trust."""
    compressed = path.suffix == ".gz"
    try:
        with open_regular(path, MAX_IDX_BYTES, follow_links=True) as raw_file, \
                (gzip.GzipFile(fileobj=raw_file) if compressed else raw_file) as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[:3] != b"\x00\x00\x08":
                raise MNISTError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
            ndim = magic[3]
            if ndim != len(expected_shape):
                raise MNISTError(f"{path} has {ndim} dimensions, MNIST's has {len(expected_shape)}")
            raw_shape = handle.read(4 * ndim)
            if len(raw_shape) < 4 * ndim:
                raise MNISTError(f"{path} is truncated (header)")
            shape = tuple(int.from_bytes(raw_shape[4 * i: 4 * i + 4], "big") for i in range(ndim))
            if shape != expected_shape:
                raise MNISTError(f"{path} holds shape {shape}, expected {expected_shape}; "
                                 f"{ENV_VAR} must point to the full MNIST")
            size = math.prod(shape)
            if not compressed and path.stat().st_size != 4 + 4 * ndim + size:
                raise MNISTError(f"{path} is {path.stat().st_size:,} bytes, but its header says "
                                 f"{4 + 4 * ndim + size:,}: truncated or padded")
            raw = handle.read(size + 1)  # one byte more than expected shows padding
    except (OSError, EOFError, zlib.error, UnsafeFile) as exc:
        raise MNISTError(f"cannot read {path}: {exc}; check the file named by {ENV_VAR}") from None
    if len(raw) != size:
        raise MNISTError(f"{path} is truncated or padded: header says shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def mnist_from_arrays(arrays: dict[str, np.ndarray], source: str) -> MNIST:
    """MNIST from its four arrays, checked (shapes, dtypes, labels, not blank) and fingerprinted."""
    for name, shape in EXPECTED_SHAPES.items():
        array = arrays[name]
        if array.shape != shape:
            raise MNISTError(
                f"{source}: {name} has shape {array.shape}, expected {shape}; "
                f"{ENV_VAR} must point to the full MNIST"
            )
        if array.dtype != np.uint8:
            raise MNISTError(f"{source}: {name} has dtype {array.dtype}, expected uint8")
    for name in ("y_train", "y_test"):
        if arrays[name].max() > 9:
            raise MNISTError(f"{source}: {name} holds label {arrays[name].max()}, expected 0..9")
        counts = np.bincount(arrays[name], minlength=10)
        if counts.min() < MIN_CLASS_SHARE * len(arrays[name]):
            raise MNISTError(f"{source}: {name} has {counts.min()} images of digit {counts.argmin()}; "
                             f"real MNIST has every digit in at least {MIN_CLASS_SHARE:.0%} of its labels")
    for name in ("x_train", "x_test"):
        blank = int((arrays[name].reshape(len(arrays[name]), -1).max(axis=1) == 0).sum())
        if blank > MAX_BLANK_SHARE * len(arrays[name]):
            raise MNISTError(f"{source}: {blank:,} of the {len(arrays[name]):,} images in {name} are "
                             "blank; this is not MNIST (real MNIST has none)")
    frozen = {}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        array.flags.writeable = False
        frozen[name] = array
    fingerprint = _fingerprint(*(frozen[name] for name in EXPECTED_SHAPES))
    return MNIST(**frozen, source=source, fingerprint=fingerprint)


def _download_with_keras() -> MNIST:
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:
        raise MNISTError(
            f"MNIST is not available locally and Keras could not download it ({exc}); "
            f"set {ENV_VAR} to a Keras-layout mnist.npz or a folder of IDX files"
        ) from None
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return mnist_from_arrays(arrays, str(KERAS_CACHE))
