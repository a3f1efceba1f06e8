"""Background training jobs that the dashboard starts and polls.

A job is a list of configs to train into a store. Its id is the hash of the sorted run keys,
so identical requests share one job. Its state lives on disk (state.json, replaced
atomically) and a worker process holds the job's lock while it runs: the lock, not a pid,
tells whether a job is alive, so a server restart or a killed worker is seen for what it is.
Nothing a visitor enters reaches a shell: the worker is started with an argument list
holding only the job's folder. A worker touches its heartbeat file every few seconds from a
thread of its own; a live worker whose heartbeat stops (a stopped process) is "stalled", and
cancelling a job ends its worker.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .configs import RunConfig
from .run_files import METRICS
from .safe_read import read_json
from .safe_write import write_atomic
from .store import StoreChain, StoreError, check_lock_file, check_own_folder, lock_held

MAX_RUNNING_JOBS = 1  # two cores: one training at a time keeps the dashboard responsive
MAX_POINTS = 24
MAX_JOB_EPOCHS = 60
MAX_JOB_WIDTH = 1200
MAX_SETTINGS_BYTES = 16_384  # what a page keeps to show the job's settings (its sidebar's choices)
MAX_TITLE = 200
HEARTBEAT_EVERY_S = 5
STALL_AFTER_S = 60  # no heartbeat for this long: the worker is stopped or hung
ACTIVE = ("queued", "running", "stalled")  # statuses that hold the job slot


class JobError(ValueError):
    """A job request is over a limit, malformed or cannot be saved; the message says which."""


@dataclass(frozen=True)
class Job:
    id: str
    folder: Path
    state: dict

    @property
    def status(self) -> str:
        """queued, running, stalled, done, cancelled, or failed (including a worker that died)."""
        return self.state["status"]

    @property
    def keys(self) -> list[str]:
        return self.state.get("keys", [])

    @property
    def progress(self) -> float:
        total = _number(self.state.get("epochs_total")) or 1.0
        return min(1.0, max(0.0, _number(self.state.get("epochs_done")) / total))

    @property
    def message(self) -> str:
        return str(self.state.get("message", ""))

    @property
    def curves(self) -> dict[str, dict[str, list[float]]]:
        """Each of the job's runs trained so far: {key: {loss, accuracy, val_loss, val_accuracy:
        one value per epoch ended}}. What the state file holds is checked, not trusted."""
        recorded = self.state.get("curves")
        if not isinstance(recorded, dict):
            return {}
        curves = {}
        for key in self.keys:
            metrics = recorded.get(key)
            if not isinstance(metrics, dict):
                continue
            columns = {name: [float(v) if isinstance(v, int | float) else math.nan for v in values]
                       for name in METRICS
                       if isinstance(values := metrics.get(name), list) and len(values) <= MAX_JOB_EPOCHS}
            if columns:
                curves[key] = columns
        return curves


def job_limits(cpus: int | None = None) -> tuple[int, int]:
    """(runs per job, jobs at once): this 2-core machine's limits, scaled with a cluster's CPUs."""
    scale = max(1, (cpus or 2) // 2)
    return MAX_POINTS * scale, MAX_RUNNING_JOBS * scale


def check_limits(configs: list[RunConfig], cpus: int | None = None) -> None:
    if not configs:
        raise JobError("nothing to train: every requested point is already stored")
    most, _ = job_limits(cpus)
    if len(configs) > most:
        raise JobError(f"a job may train at most {most} runs, this one asks for {len(configs)}")
    for c in configs:
        if c.epochs > MAX_JOB_EPOCHS:
            raise JobError(f"jobs may train at most {MAX_JOB_EPOCHS} epochs, got {c.epochs}")
        if c.model != "mlp":
            raise JobError(f"the dashboard trains MLPs only, got {c.model}")
        if max(c.hidden) > MAX_JOB_WIDTH:
            raise JobError(f"jobs may use widths up to {MAX_JOB_WIDTH}, got {max(c.hidden)}")


def jobs_root(stores: StoreChain) -> Path:
    return stores.writable.root / ".jobs"


def check_job_folder(root: Path, folder: Path) -> None:
    """JobError naming the file and what to do, if the jobs folder, the job's folder or a file
    of it is a link or the wrong kind of file (a planted worker.lock link made every retry
    fail with no word why): nothing is created or written through them."""
    try:
        check_own_folder(root)
        check_own_folder(folder)
        check_lock_file(root / "start.lock")
        for name in ("worker.lock", "state.lock", "state.json", "worker.log", "heartbeat"):
            check_lock_file(folder / name)
    except StoreError as exc:
        raise JobError(str(exc).replace("lock file ", "")) from None


def job_id(keys: list[str]) -> str:
    return hashlib.sha256(" ".join(sorted(set(keys))).encode()).hexdigest()[:32]


def _write_state(folder: Path, state: dict) -> None:
    state = {**state, "updated": time.time()}
    write_atomic(folder / "state.json", json.dumps(state, indent=2))


class Cancelled(Exception):
    """The job was cancelled: its worker stops where it is (runs already stored stay)."""


def _worker_update(folder: Path, changes: dict) -> dict:
    """The worker's state change, as a compare-and-set under the job's state lock: applied
    unless the job was cancelled meanwhile, which raises Cancelled instead."""
    with FileLock(str(folder / "state.lock"), timeout=30):
        current = read_json(folder / "state.json")
        if not isinstance(current, dict) or current.get("status") == "cancelled":
            raise Cancelled()
        state = {**current, **changes}
        _write_state(folder, state)
        return state


def _alive(folder: Path) -> bool:
    """True while a worker holds the job's lock."""
    return lock_held(folder / "worker.lock")


def load(folder: Path) -> Job | None:
    """The job in `folder` as it is now, or None if its state is missing or malformed."""
    try:
        state = read_json(folder / "state.json")
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("status") not in ACTIVE + ("done", "failed", "cancelled"):
        return None
    if state["status"] in ("queued", "running") and not _alive(folder):
        # a worker that took the lock and lost it died; a new one gets 30 s to take it
        if state["status"] == "running" or time.time() - _number(state.get("launched")) > 30:
            state = {**state, "status": "failed",
                     "message": "the training process stopped before finishing; retry to resume"}
    elif state["status"] == "running":
        silent = time.time() - _heartbeat(folder, state)
        if silent > STALL_AFTER_S:
            state = {**state, "status": "stalled",
                     "message": f"no sign of life from the training process (pid {state.get('pid')}) "
                                f"for {silent:.0f} s: it is stopped or hung; cancel the job to free the slot"}
    return Job(folder.name, folder, state)


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _heartbeat(folder: Path, state: dict) -> float:
    """When the worker last showed it was alive: its heartbeat file, else its last state write."""
    try:
        return (folder / "heartbeat").stat().st_mtime
    except OSError:
        return _number(state.get("updated"))


def list_jobs(stores: StoreChain) -> list[Job]:
    root = jobs_root(stores)
    if root.is_symlink() or not root.is_dir():
        return []  # a link is never followed; start() says what to do about it
    jobs = [load(folder) for folder in root.iterdir() if folder.is_dir() and not folder.is_symlink()]
    return sorted((j for j in jobs if j), key=lambda j: j.state.get("launched", 0), reverse=True)


def start(configs: list[RunConfig], stores: StoreChain, fingerprint: str, title: str,
          data_path: str | None = None, cpus: int | None = None, settings: dict | None = None) -> Job:
    """Start a job training `configs` (the caller's missing ones; the worker still reuses any
    stored since), or return the identical job if it is still active.

    `data_path` is the MNIST the worker loads (default: the loader's own search); the worker
    refuses data whose fingerprint is not `fingerprint`. `cpus`: the Ray cluster's, when jobs
    run there ($MNIST_LAB_RAY_ADDRESS), which raises the limits.
    """
    todo = list(dict.fromkeys(configs))
    check_limits(todo, cpus)
    # bounded where they enter: a state.json over the reader's 1 MB would make the job invisible
    try:
        said = len(json.dumps(settings or {}))
    except (TypeError, ValueError):
        raise JobError("a job's settings must be plain JSON values") from None
    if said > MAX_SETTINGS_BYTES or len(title) > MAX_TITLE:
        raise JobError(f"a job's settings may take {MAX_SETTINGS_BYTES:,} characters and its title "
                       f"{MAX_TITLE}; got {said:,} and {len(title)}")
    most_jobs = job_limits(cpus)[1]
    keys = [c.key(fingerprint) for c in todo]
    root = jobs_root(stores)
    folder = root / job_id(keys)
    try:
        check_job_folder(root, folder)
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / "start.lock"), timeout=10):
            existing = load(folder)
            if existing and existing.status in ACTIVE:
                return existing
            if existing:  # its last worker may still be exiting: a new one would find it holding the lock
                deadline = time.monotonic() + 15
                while _worker_running(existing) and time.monotonic() < deadline:
                    time.sleep(0.1)
            # processes, not states: a cancelled job whose worker has not ended yet still counts
            active = [j for j in list_jobs(stores)
                      if j.status in ACTIVE or (j.status == "cancelled" and _worker_running(j))]
            if len(active) >= most_jobs:
                said = active[0].status if active[0].status in ACTIVE else "ending"
                raise JobError(f"{len(active)} training job(s) already {said} (limit "
                               f"{most_jobs}); wait for one to finish or cancel it")
            state = {"status": "queued", "title": title, "configs": [c.to_dict() for c in todo],
                     "keys": keys, "fingerprint": fingerprint,
                     "data": str(Path(data_path).absolute()) if data_path else None,
                     "store": str(stores.writable.root), "epochs_done": 0,
                     "epochs_total": max(c.epochs for c in todo), "launched": time.time(),
                     "message": "starting", "settings": settings or {}}
            (folder / "heartbeat").unlink(missing_ok=True)
            _write_state(folder, state)
            log_fd = os.open(folder / "worker.log",
                             os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            try:
                worker = subprocess.Popen([sys.executable, "-m", "mnist_core.jobs", str(folder)],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_fd,
                                          start_new_session=True, cwd=Path(__file__).resolve().parent.parent)
            finally:
                os.close(log_fd)
            with FileLock(str(folder / "state.lock"), timeout=10):  # the worker may write already
                current = read_json(folder / "state.json")
                if isinstance(current, dict):
                    _write_state(folder, {**current, "spawned": worker.pid})
    except Timeout:
        raise JobError(f"another request is starting a job in {root} and has not finished in 10 s; "
                       "try again") from None
    except OSError as exc:  # a store under a file, a read-only folder, a full disk
        raise JobError(f"cannot save the training job in {root}: {exc.strerror or exc}; set "
                       f"MNIST_LAB_STORE to a writable folder with free space") from None
    return load(folder)


def cancel(job: Job) -> Job:
    """Mark the job cancelled (under its state lock: a worker that has not started yet sees it and
    exits before training) and end its worker, stopped or not, started or still starting;
    finished runs stay stored."""
    with FileLock(str(job.folder / "state.lock"), timeout=30):
        try:
            current = read_json(job.folder / "state.json")
        except (OSError, ValueError):  # unreadable now: cancel what the page showed
            current = None
        current = current if isinstance(current, dict) else job.state
        _write_state(job.folder, {**current, "status": "cancelled", "message": "cancelled"})
    for pid in {current.get("pid"), current.get("spawned")}:
        if isinstance(pid, int) and _is_worker_of(pid, job.folder):
            try:
                os.kill(pid, signal.SIGKILL)  # SIGKILL: a stopped process never sees SIGTERM
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while _worker_running(load(job.folder) or job) and time.monotonic() < deadline:
        time.sleep(0.1)
    return load(job.folder)


def _worker_running(job: Job) -> bool:
    """Whether a worker process of this job exists: holding its lock, or spawned and not yet there."""
    if _alive(job.folder):
        return True
    return any(isinstance(pid, int) and _is_worker_of(pid, job.folder)
               for pid in (job.state.get("pid"), job.state.get("spawned")))


def _is_worker_of(pid: int, folder: Path) -> bool:
    """True if `pid` is this job's worker (not another process that got its number since)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"mnist_core.jobs" in command and str(folder).encode() in command


def run_worker(folder: Path) -> int:
    """The worker process: train the job's configs, recording progress after every epoch."""
    from .backends import executor_for
    from .data import load_mnist
    from .executors import LocalExecutor
    from .sweeps import ensure_runs

    lock = FileLock(str(folder / "worker.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return 0  # another worker already runs this job
    beating = threading.Event()
    threading.Thread(target=_beat, args=(folder, beating), daemon=True).start()
    try:
        state = _worker_update(folder, {"status": "running", "pid": os.getpid(), "message": "loading MNIST"})
    except Cancelled:  # cancelled before this worker started: it never trains
        beating.set()
        lock.release()
        return 1
    try:
        configs = [RunConfig.from_dict(c) for c in state["configs"]]
        stores = StoreChain.default(state["store"])
        data = load_mnist(state.get("data"))
        if state.get("fingerprint") not in (None, data.fingerprint):
            raise JobError(f"the MNIST at {data.source} is not the data the job was asked for "
                           "(its fingerprint differs)")

        executor = executor_for()  # on the Ray cluster when $MNIST_LAB_RAY_ADDRESS is set
        if not isinstance(executor, LocalExecutor):
            state = _worker_update(folder, {"message": "joining the Ray cluster"})
        where = executor.where()
        if isinstance(executor, LocalExecutor):
            state = _worker_update(folder, {"where": where, "message": "starting TensorFlow and compiling "
                                                                       "the models"})
            import tensorflow  # noqa: F401  (its ~5 s import shown as such, not as 0% of training)
        state = _worker_update(folder, {"where": where, "message": f"training on {where}"})

        curves: dict[str, dict[str, list]] = {}  # each run's figures per epoch, for live curves

        def on_epoch(done: int, so_far: dict) -> None:
            for key, run in so_far.items():
                curves[key] = {name: [v if math.isfinite(v) else None for v in values]
                               for name, values in run.items()}
            where = "" if isinstance(executor, LocalExecutor) else f" on {state['where']}"
            _worker_update(folder, {"status": "running", "epochs_done": done, "curves": curves,
                                    "message": f"epoch {done} of {state['epochs_total']}{where}"})

        def on_wait(message: str) -> None:
            _worker_update(folder, {"message": message})

        ensure_runs(configs, data, stores, fused=True, progress=False, on_epoch=on_epoch,
                    on_wait=on_wait, executor=executor)
        outcome = {"status": "done", "epochs_done": state["epochs_total"], "message": "finished"}
    except Cancelled:
        outcome = None
    except Exception as exc:  # recorded for the page to show; the job can be retried
        outcome = {"status": "failed", "message": f"{type(exc).__name__}: {exc}"}
    beating.set()
    if outcome is not None:
        try:
            _worker_update(folder, outcome)
        except Cancelled:
            outcome = None
    lock.release()
    return 0 if outcome and outcome["status"] == "done" else 1


def _beat(folder: Path, stop: threading.Event) -> None:
    """Touch the job's heartbeat file until `stop` is set (a stopped process stops beating)."""
    while not stop.is_set():
        try:
            (folder / "heartbeat").touch()
        except OSError:
            pass
        stop.wait(HEARTBEAT_EVERY_S)


if __name__ == "__main__":
    sys.exit(run_worker(Path(sys.argv[1])))
