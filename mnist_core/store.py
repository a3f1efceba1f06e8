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
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import platformdirs
from filelock import FileLock, Timeout

from . import run_files
from .configs import RunConfig
from .safe_read import UnsafeFile, open_regular, read_json
from .safe_write import fsync_dir, write_atomic

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
# The committed results: beside the package in a checkout, inside it once installed (pyproject.toml).
COMMITTED_STORE = next((folder for folder in (REPO_ROOT / "cached_results",
                                              Path(__file__).resolve().parent / "cached_results")
                        if folder.is_dir()), REPO_ROOT / "cached_results")
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
MAX_RUN_FILE_BYTES = run_files.MAX_MODEL_BYTES  # the model is a run's largest file
KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_reported: set[tuple[str, str]] = set()


STALE_AFTER_S = 24 * 3600  # leftover staging and trash folders older than this are removed
WAIT_REPORT_EVERY_S = 15


class StoreError(RuntimeError):
    """A store cannot be read or written; the message says which and what to do."""


class RunRejected(StoreError):
    """A run about to be published failed verification; nothing was stored."""


class RunUnreadable(StoreError):
    """An entry exists but this process may not read it (permissions, I/O): left as it is."""


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise StoreError(f"run key must be 64 lowercase hex characters, got {key!r}")
    return key


def sha256_file(path: Path, size: int | None = None) -> str:
    """The sha256 of a regular file (UnsafeFile if it is not one, or not `size` bytes when given)."""
    digest = hashlib.sha256()
    with open_regular(path, MAX_RUN_FILE_BYTES if size is None else size) as handle:
        found = os.fstat(handle.fileno()).st_size
        if size is not None and found != size:
            raise UnsafeFile(f"{path.name} has {found} bytes, manifest says {size}")
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store_path(text: str | os.PathLike) -> Path:
    """A store folder as an absolute path, so it means the same to every process it is passed to."""
    if not str(text).strip():
        raise StoreError("the store path is empty; pass a folder, e.g. --store ~/mnist-runs")
    return Path(os.path.abspath(Path(text).expanduser()))


def default_user_store() -> Path:
    if os.environ.get(STORE_ENV_VAR):
        return store_path(os.environ[STORE_ENV_VAR])
    return Path(platformdirs.user_cache_dir("mnist-lab")) / "runs"


def holder_description(owner: Path) -> str:
    """Who holds a run's lock, from the note its holder left: pid, host and, here, its state."""
    try:
        note = read_json(owner, max_bytes=4096)
        pid, host = int(note["pid"]), str(note["host"])
    except (OSError, ValueError, KeyError, TypeError):  # UnsafeFile is a ValueError
        return "another process is computing it"
    if host != socket.gethostname():
        return f"process {pid} on {host} is computing it"
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return f"process {pid} is computing it"
    if state in "Tt":
        return (f"process {pid} holds it but is stopped: resume it (kill -CONT {pid}) or end it "
                f"(kill {pid})")
    return f"process {pid} is computing it"


@dataclass(frozen=True)
class Run:
    """A verified run on disk. Heavy parts load on demand; TensorFlow only for the model."""

    key: str
    path: Path
    config: RunConfig
    metrics: dict
    data_fingerprint: str
    keras_sha256: str = ""  # model.keras's, as the manifest lists it
    onnx_sha256: str | None = None  # model.onnx's, as the manifest lists it (None: not listed)

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def onnx_path(self) -> Path | None:
        """The model as ONNX (verified like the other files), or None if the run has none yet."""
        return self.path / run_files.ONNX_FILE if self.onnx_sha256 else None

    @property
    def test_accuracy(self) -> float:
        return self.metrics["test_accuracy"]

    @property
    def train_accuracy(self) -> float:
        return self.metrics["train_accuracy"]

    # The readers check what they read (mnist_core.run_files) and raise UnsafeFile, a
    # ValueError, if the files changed into something else since the run was verified.
    def history(self) -> pd.DataFrame:
        import pandas as pd  # here, not at import: reading a drawing needs no pandas (0.4 s)

        return pd.DataFrame(run_files.read_history(self.path / "history.csv"))

    def predictions(self) -> np.ndarray:
        """Test-set class probabilities, (10000, 10) float32."""
        return run_files.read_predictions(self.path / "predictions.npz").astype(np.float32)

    def errors(self) -> dict[str, np.ndarray]:
        """Misclassified test images: index, image, true, predicted, confidence, true_probability."""
        return run_files.read_errors(self.path / "errors.npz")

    def load_model(self):
        """The Keras model (safe_mode), checked to have this run's architecture."""
        return run_files.load_model(self.model_path, self.config)


class RunStore:
    """One folder of runs. `read_only` stores are never written (the committed results)."""

    def __init__(self, root: str | os.PathLike, read_only: bool = False):
        self.root = store_path(root)
        self.read_only = read_only

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r}{', read_only=True' if self.read_only else ''})"

    def path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def check_readable(self) -> None:
        """Raise StoreError if the store exists but cannot be listed, or cannot exist (a part of its
        path is a file); a store not made yet is fine (it is made on the first write)."""
        try:
            info = os.stat(self.root)
        except FileNotFoundError:
            return
        except NotADirectoryError:
            raise StoreError(f"store {self.root} cannot be a folder: a part of its path is a file; pass "
                             "a folder to --store") from None
        except OSError as exc:
            raise StoreError(f"store {self.root} cannot be read ({exc.strerror or exc}); pass a folder "
                             "to --store") from None
        if not stat.S_ISDIR(info.st_mode) or not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreError(f"store {self.root} is not a readable folder; pass a folder to --store")

    def keys(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if KEY_PATTERN.match(p.name))
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._report("*", f"the store folder cannot be listed ({exc.strerror or exc})")
            return []

    def get(self, key: str) -> Run | None:
        """The run stored under `key`, or None if absent, unreadable or failing verification."""
        try:
            return self.load(key)
        except RunUnreadable as exc:
            self._report(key, f"{exc}; left in place")
        except (UnsafeFile, ValueError) as exc:
            self._report(key, f"{exc}; it will be retrained")
        return None

    def load(self, key: str) -> Run | None:
        """The verified run under `key`, or None if there is none.

        Raises RunUnreadable if the entry cannot be read here (permissions, I/O), and
        UnsafeFile (a ValueError) if it is proven corrupt: a file is missing, differs from
        the manifest, or holds the wrong kind of content.
        """
        folder = self.path(key)
        try:
            kind = folder.lstat().st_mode
        except (FileNotFoundError, NotADirectoryError):  # no entry, or no store folder at all
            return None
        except OSError as exc:
            raise RunUnreadable(f"run {key[:12]} in {self.root} cannot be read "
                                f"({exc.strerror or exc})") from None
        if not (stat.S_ISDIR(kind) or stat.S_ISLNK(kind)):
            raise UnsafeFile(f"{key[:12]} is a file, not a run folder")
        try:
            return self._verified(key, folder)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise UnsafeFile(f"{Path(exc.filename or folder).name} is missing") from None
        except OSError as exc:
            raise RunUnreadable(f"run {key[:12]} in {self.root} cannot be read "
                                f"({exc.strerror or exc}: {exc.filename})") from None

    def runs(self) -> Iterator[Run]:
        for key in self.keys():
            run = self.get(key)
            if run is not None:
                yield run

    def _verified(self, key: str, folder: Path) -> Run:
        files = run_files.read_manifest(folder / MANIFEST, RUN_FILES)
        for name, expected in files.items():
            if sha256_file(folder / name, expected["size"]) != expected["sha256"]:
                raise UnsafeFile(f"{name} does not match its sha256 in the manifest")
        config, fingerprint = run_files.read_config(folder / "config.json")
        if config.key(fingerprint) != key:
            raise UnsafeFile("config.json does not hash to the folder's key")
        metrics = run_files.read_metrics(folder / "metrics.json")
        run_files.read_history(folder / "history.csv", metrics["epochs_trained"])
        run_files.read_predictions(folder / "predictions.npz")
        run_files.read_errors(folder / "errors.npz", metrics["test_error"])
        run_files.check_model_file(folder / "model.keras")
        onnx = files.get(run_files.ONNX_FILE)
        return Run(key, folder, config, metrics, fingerprint, files["model.keras"]["sha256"],
                   onnx["sha256"] if onnx else None)

    def add_onnx(self, key: str, data: bytes, keras_sha256: str) -> Run:
        """Store `data`, the run's model as ONNX made from the model.keras whose sha256 is given,
        beside it and in its manifest: the file first, then the manifest that lists it, each
        through the one writer, under the run's lock. StoreError if the store is read-only."""
        if self.read_only:
            raise StoreError(f"store {self.root} is read-only; pass a writable --store")
        with self.lock(key, "adding its ONNX model", wait_timeout=60):
            run = self.load(key)
            if run is None:
                raise StoreError(f"run {key[:12]} is no longer in {self.root}")
            folder = run.path
            files = run_files.read_manifest(folder / MANIFEST, RUN_FILES)
            if files["model.keras"]["sha256"] != keras_sha256:
                raise StoreError(f"run {key[:12]}'s model.keras changed while it was exported; try again")
            try:
                write_atomic(folder / run_files.ONNX_FILE, data)
                files[run_files.ONNX_FILE] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                              "keras_sha256": keras_sha256}
                write_atomic(folder / MANIFEST, json.dumps({"files": files}, indent=2))
            except OSError as exc:
                raise StoreError(f"cannot write {run_files.ONNX_FILE} of run {key[:12]} to {self.root}: "
                                 f"{exc.strerror or exc}") from None
            return self._verified(key, folder)

    def _report(self, key: str, reason: str) -> None:
        marker = (str(self.root), key)
        if marker not in _reported:
            _reported.add(marker)
            log.warning("ignoring run %s in %s: %s", key, self.root, reason)

    @contextmanager
    def lock(self, key: str, what: str = "", wait_timeout: float | None = None,
             on_wait: Callable[[str], None] | None = None):
        """Hold the cross-process lock for computing `key` (the OS drops it if the holder dies).

        While another process holds it, says every WAIT_REPORT_EVERY_S seconds which run it
        waits for and which process holds it (through `on_wait`, else the log); gives up with
        StoreError after `wait_timeout` seconds.
        """
        locks = self.root / ".locks"
        check_own_folder(locks)
        self._writable_dir(locks)
        lock_path = locks / f"{validate_key(key)}.lock"
        check_lock_file(lock_path)
        lock = FileLock(str(lock_path))
        owner = locks / f"{key}.owner"
        started = time.monotonic()
        reported = None
        while True:
            try:
                lock.acquire(timeout=1)
                break
            except Timeout:
                pass
            except OSError as exc:  # the lock file changed into something that cannot be locked
                raise StoreError(f"cannot lock {lock_path} ({exc.strerror or exc}); remove it "
                                 "if no process of this store is running") from None
            waited = time.monotonic() - started
            message = (f"waiting for run {key[:12]}{f' ({what})' if what else ''}: "
                       f"{holder_description(owner)}; waited {waited:.0f} s")
            if wait_timeout is not None and waited >= wait_timeout:
                raise StoreError(f"gave up after {waited:.0f} s (--wait-timeout) waiting for run "
                                 f"{key[:12]}: {holder_description(owner)}") from None
            if reported is None or time.monotonic() - reported >= WAIT_REPORT_EVERY_S:
                reported = time.monotonic()
                hint = "" if wait_timeout is not None else " (--wait-timeout SECONDS gives up)"
                (on_wait or log.warning)(message + hint)
        try:
            try:
                write_atomic(owner, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                "since": time.time()}))
            except OSError:
                pass  # the owner note only makes waiting messages clearer
            yield
        finally:
            owner.unlink(missing_ok=True)
            lock.release()

    def publish(self, key: str, config: RunConfig, data_fingerprint: str,
                write: Callable[[Path], None]) -> Run:
        """Build a run with `write(folder)`, add config.json and the manifest, verify it all as a
        reader would, rename into place. A run failing verification is never stored (RunRejected).

        Files and folders get the modes the umask allows, so a group sharing a store can read it.
        """
        if self.read_only:
            raise StoreError(f"store {self.root} is read-only; pass a writable --store")
        target = self.path(key)
        self._writable_dir(self.root)
        self.clean_leftovers()
        staging = self.root / f".tmp-{key[:12]}-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir()
        except OSError as exc:
            raise StoreError(f"cannot write to store {self.root}: {exc.strerror}") from None
        try:
            write(staging)
            write_atomic(staging / "config.json", json.dumps(
                {"config": config.to_dict(), "data_fingerprint": data_fingerprint, "key": key},
                indent=2, sort_keys=True))
            missing = [name for name in RUN_FILES if not (staging / name).is_file()]
            if missing:
                raise StoreError(f"run {key} was not fully written: missing {missing}")
            sizes = {name: (staging / name).stat().st_size for name in RUN_FILES}
            files = {name: {"size": sizes[name], "sha256": sha256_file(staging / name, sizes[name])}
                     for name in RUN_FILES}
            write_atomic(staging / MANIFEST, json.dumps({"files": files}, indent=2))
            for name in RUN_FILES:
                _fsync_file(staging / name)
            try:
                self._verified(key, staging)
            except (UnsafeFile, ValueError) as exc:
                raise RunRejected(f"run {key[:12]} failed verification and was not stored: {exc}") from None
            existing = self._existing(key)
            if existing is not None:
                _remove(staging)
                return existing
            os.replace(staging, target)
            fsync_dir(self.root)
        except OSError as exc:
            _remove(staging)
            raise StoreError(f"cannot write run {key[:12]} to {self.root}: {exc.strerror or exc}") from None
        except BaseException:
            _remove(staging)
            raise
        run = self.get(key)
        if run is None:
            raise StoreError(f"run {key} failed verification right after publishing")
        return run

    def _existing(self, key: str) -> Run | None:
        """A good run already under `key`; a corrupt one is set aside, an unreadable one refused."""
        try:
            run = self.load(key)
        except RunUnreadable as exc:
            raise StoreError(f"{exc}; left as it is: fix its permissions or use another store") from None
        except ValueError:
            self.discard(key)
            return None
        return run

    def check_writable_entry(self, key: str) -> None:
        """Raise StoreError if `key` has an entry here that this process cannot read (before
        training for it: publishing would have to refuse)."""
        try:
            self.load(key)
        except RunUnreadable as exc:
            raise StoreError(f"{exc}; fix its permissions or use another store") from None
        except ValueError:
            pass

    def discard(self, key: str) -> None:
        """Remove an entry proven corrupt: renamed aside first so no reader sees it half-deleted."""
        target = self.path(key)
        if target.exists() or target.is_symlink():
            aside = self.root / f".trash-{key[:12]}-{uuid.uuid4().hex[:8]}"
            os.replace(target, aside)
            _remove(aside)
        _reported.discard((str(self.root), key))

    def clean_leftovers(self, older_than_s: float = STALE_AFTER_S) -> int:
        """Remove staging and trash folders older than `older_than_s` whose key nobody is
        computing (left by writers that died); returns how many were removed."""
        if self.read_only or not self.root.is_dir():
            return 0
        removed = 0
        now = time.time()
        for leftover in self.root.glob(".t[mr][pa]*-*"):
            prefix = leftover.name.split("-")[1]
            if not leftover.name.startswith((".tmp-", ".trash-")) or self._locked(prefix):
                continue
            try:
                if now - leftover.lstat().st_mtime > older_than_s:
                    _remove(leftover)
                    removed += 1
            except OSError:
                continue
        return removed

    def _locked(self, prefix: str) -> bool:
        return any(lock_held(path) for path in (self.root / ".locks").glob(f"{prefix}*.lock"))

    def clean_staging(self, key: str) -> None:
        """Delete folders left for `key` by writers that died; call while holding its lock."""
        if self.root.is_dir():
            for prefix in (".tmp-", ".trash-"):
                for leftover in self.root.glob(f"{prefix}{validate_key(key)[:12]}-*"):
                    _remove(leftover)

    def _writable_dir(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store folder {folder}: {exc.strerror}") from None
        if not os.access(folder, os.W_OK):
            raise StoreError(f"store folder {folder} is not writable; pass a writable --store")


def check_own_folder(path: Path) -> None:
    """Raise StoreError unless `path` is absent or a folder itself, not a link to one: what is
    created inside it (locks, job states, logs) would land wherever the link points."""
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there to be a link
        return
    except OSError as exc:
        raise StoreError(f"folder {path} cannot be checked ({exc.strerror or exc})") from None
    if not stat.S_ISDIR(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "a file"
        raise StoreError(f"{path} is {kind}, not a folder of this store; remove it (rm '{path}') "
                         "if no process of this store is running, and try again")


def check_lock_file(path: Path) -> None:
    """Raise StoreError unless `path` is absent or a regular file: a lock is opened for writing,
    so a planted link would be written through, and a folder or a loop cannot be locked."""
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise StoreError(f"lock file {path} cannot be checked ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else "not a file"
        raise StoreError(f"lock file {path} is {kind}, not a regular file; remove it "
                         f"(rm -r '{path}') if no process of this store is running")


def lock_held(path: Path) -> bool:
    """True while some process holds the file lock at `path` (the OS drops it when that dies)."""
    try:
        check_lock_file(path)
    except StoreError:
        return False  # no process can hold a lock that is not a regular file
    probe = FileLock(str(path))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:
        return False
    probe.release()
    return False


def _remove(path: Path) -> None:
    """Delete a folder we made, or a link in its place (never what a link points to)."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


class StoreChain:
    """Where runs are looked up (in order) and where new ones are written."""

    def __init__(self, writable: RunStore, readable: list[RunStore] | None = None):
        self.writable = writable
        self.all = [writable] + [s for s in (readable or []) if s.root != writable.root]

    @classmethod
    def default(cls, store_dir: str | os.PathLike | None = None, committed: bool = True) -> StoreChain:
        """Write to `store_dir` (else the user store); read it and (unless told not) the committed
        results. A `store_dir` given that is no folder is refused here, the same for every command."""
        writable = RunStore(store_dir if store_dir else default_user_store())
        if store_dir:
            writable.check_readable()
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
