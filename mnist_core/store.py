"""Content-addressed runs on disk: atomic publish, one trainer per key, verification on read.

A run is a folder named by its key holding config.json, metrics.json, history.csv,
predictions.npz, errors.npz, model.keras and, written last, manifest.json with the size
and sha256 of every other file. Folders are built beside the target and renamed into
place, so a reader sees a whole run or none; an entry that fails verification is
reported once and treated as missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from .configs import ConfigError, RunConfig

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMITTED_STORE = REPO_ROOT / "cached_results"
STORE_ENV_VAR = "MNIST_LAB_STORE"
RUN_FILES = (
    "config.json",
    "metrics.json",
    "history.csv",
    "predictions.npz",
    "errors.npz",
    "model.keras",
)
MANIFEST = "manifest.json"
KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_reported: set[tuple[str, str]] = set()


class StoreError(RuntimeError):
    """A store cannot be read or written; the message says which and what to do."""


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise StoreError(f"run key must be 64 lowercase hex characters, got {key!r}")
    return key


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_user_store() -> Path:
    if os.environ.get(STORE_ENV_VAR):
        return Path(os.environ[STORE_ENV_VAR]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mnist-lab")) / "runs"


@dataclass(frozen=True)
class Run:
    """A verified run on disk. Heavy parts load on demand; TensorFlow only for the model."""

    key: str
    path: Path
    config: RunConfig
    metrics: dict
    data_fingerprint: str

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def test_accuracy(self) -> float:
        return self.metrics["test_accuracy"]

    @property
    def train_accuracy(self) -> float:
        return self.metrics["train_accuracy"]

    def history(self):
        import pandas as pd

        return pd.read_csv(self.path / "history.csv")

    def predictions(self) -> np.ndarray:
        """Test-set class probabilities, (10000, 10) float32."""
        with np.load(self.path / "predictions.npz", allow_pickle=False) as npz:
            return npz["probabilities"].astype(np.float32)

    def errors(self) -> dict[str, np.ndarray]:
        """Misclassified test images: index, image, true, predicted, confidence."""
        with np.load(self.path / "errors.npz", allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}

    def load_model(self):
        import keras

        return keras.saving.load_model(self.model_path, compile=False, safe_mode=True)


class RunStore:
    """One folder of runs. `read_only` stores are never written (the committed results)."""

    def __init__(self, root: str | os.PathLike, read_only: bool = False):
        self.root = Path(root).expanduser()
        self.read_only = read_only

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r}{', read_only=True' if self.read_only else ''})"

    def path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def check_readable(self) -> None:
        """Raise StoreError if the store exists but cannot be listed."""
        if self.root.exists() and (not self.root.is_dir() or not os.access(self.root, os.R_OK | os.X_OK)):
            raise StoreError(f"store {self.root} is not a readable folder; pass a folder to --store")

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if KEY_PATTERN.match(p.name))

    def get(self, key: str) -> Run | None:
        """The run stored under `key`, or None if absent or failing verification."""
        folder = self.path(key)
        if not folder.is_dir():
            return None
        try:
            return self._verified(key, folder)
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
            self._report(key, f"{type(exc).__name__}: {exc}")
            return None

    def runs(self) -> Iterator[Run]:
        for key in self.keys():
            run = self.get(key)
            if run is not None:
                yield run

    def _verified(self, key: str, folder: Path) -> Run:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        if sorted(files) != sorted(RUN_FILES):
            raise ValueError(f"manifest lists {sorted(files)}, expected {sorted(RUN_FILES)}")
        for name, expected in files.items():
            path = folder / name
            size = path.stat().st_size
            if size != expected["size"]:
                raise ValueError(f"{name} has {size} bytes, manifest says {expected['size']}")
            if sha256_file(path) != expected["sha256"]:
                raise ValueError(f"{name} does not match its sha256 in the manifest")
        stored = json.loads((folder / "config.json").read_text())
        config = RunConfig.from_dict(stored["config"])
        if config.key(stored["data_fingerprint"]) != key:
            raise ValueError("config.json does not hash to the folder's key")
        metrics = json.loads((folder / "metrics.json").read_text())
        return Run(key, folder, config, metrics, stored["data_fingerprint"])

    def _report(self, key: str, reason: str) -> None:
        marker = (str(self.root), key)
        if marker not in _reported:
            _reported.add(marker)
            log.warning("ignoring invalid run %s in %s (%s); it will be retrained", key, self.root, reason)

    def lock(self, key: str) -> FileLock:
        """A cross-process lock for computing `key`; released by the OS if the holder dies."""
        locks = self.root / ".locks"
        self._writable_dir(locks)
        return FileLock(str(locks / f"{validate_key(key)}.lock"))

    def publish(self, key: str, config: RunConfig, data_fingerprint: str,
                write: Callable[[Path], None]) -> Run:
        """Build a run with `write(folder)`, add config.json and the manifest, rename into place."""
        if self.read_only:
            raise StoreError(f"store {self.root} is read-only; pass a writable --store")
        target = self.path(key)
        self._writable_dir(self.root)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:12]}-", dir=self.root))
        except OSError as exc:
            raise StoreError(f"cannot write to store {self.root}: {exc.strerror}") from None
        try:
            write(staging)
            (staging / "config.json").write_text(json.dumps(
                {"config": config.to_dict(), "data_fingerprint": data_fingerprint, "key": key},
                indent=2, sort_keys=True))
            missing = [name for name in RUN_FILES if not (staging / name).is_file()]
            if missing:
                raise StoreError(f"run {key} was not fully written: missing {missing}")
            files = {name: {"size": (staging / name).stat().st_size,
                            "sha256": sha256_file(staging / name)} for name in RUN_FILES}
            _write_synced(staging / MANIFEST, json.dumps({"files": files}, indent=2))
            for name in RUN_FILES:
                _fsync_file(staging / name)
            if target.exists():
                if self.get(key) is not None:
                    shutil.rmtree(staging, ignore_errors=True)
                    return self.get(key)
                self.discard(key)
            os.replace(staging, target)
            _fsync_dir(self.root)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreError(f"cannot write run {key[:12]} to {self.root}: {exc.strerror or exc}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        run = self.get(key)
        if run is None:
            raise StoreError(f"run {key} failed verification right after publishing")
        return run

    def discard(self, key: str) -> None:
        """Remove an entry (a bad one): renamed aside first so no reader sees it half-deleted."""
        target = self.path(key)
        if target.exists():
            aside = self.root / f".trash-{key[:12]}-{uuid.uuid4().hex[:8]}"
            os.replace(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        _reported.discard((str(self.root), key))

    def clean_staging(self, key: str) -> None:
        """Delete folders left for `key` by writers that died; call while holding its lock."""
        if self.root.is_dir():
            for prefix in (".tmp-", ".trash-"):
                for leftover in self.root.glob(f"{prefix}{validate_key(key)[:12]}-*"):
                    shutil.rmtree(leftover, ignore_errors=True)

    def _writable_dir(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store folder {folder}: {exc.strerror}") from None
        if not os.access(folder, os.W_OK):
            raise StoreError(f"store folder {folder} is not writable; pass a writable --store")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Stores:
    """Where runs are looked up (in order) and where new ones are written."""

    def __init__(self, writable: RunStore, readable: list[RunStore] | None = None):
        self.writable = writable
        self.all = [writable] + [s for s in (readable or []) if s.root != writable.root]

    @classmethod
    def default(cls, store_dir: str | os.PathLike | None = None, committed: bool = True) -> Stores:
        """Write to `store_dir` (else the user store); read it and (unless told not) the committed results."""
        writable = RunStore(store_dir if store_dir else default_user_store())
        return cls(writable, [RunStore(COMMITTED_STORE, read_only=True)] if committed else [])

    def get(self, key: str) -> Run | None:
        for store in self.all:
            run = store.get(key)
            if run is not None:
                return run
        return None

    def runs(self) -> list[Run]:
        seen, found = set(), []
        for store in self.all:
            for run in store.runs():
                if run.key not in seen:
                    seen.add(run.key)
                    found.append(run)
        return found
