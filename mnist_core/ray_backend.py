"""Training on a Ray cluster: tasks train on the workers, runs come back as files, the driver publishes.

MNIST goes into Ray's object store once and reaches every worker from there (workers need
no MNIST file; they check its fingerprint). Our package reaches them through the job's
runtime environment (`py_modules`), so workers need the libraries of requirements.txt but no
copy of this repository and no shared filesystem. A task trains into a temporary store of
its own and returns the run's files; the driver verifies them and publishes them into its
store under the per-key locks `ensure_runs` holds, so a retried task never publishes twice
and a run that fails verification is trained again, never stored.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from .configs import ConfigError, RunConfig
from .data import EXPECTED_SHAPES, MNIST, MNISTError, mnist_from_arrays
from .executors import ClusterError, LocalExecutor, cluster_words
from .planning import cost, plan_tasks
from .store import RUN_FILES, Run, RunRejected, RunStore


def _send_our_token() -> None:
    """Ray sends a token only with RAY_AUTH_MODE=token, read once when Ray is imported: turn it
    on when a token is at hand and the mode is not set, so joining a cluster that requires
    one works with just the token (as `ray start` on the workers does)."""
    if "RAY_AUTH_MODE" not in os.environ and (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"


_send_our_token()

import ray  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

log = logging.getLogger(__name__)

TASK_RETRIES = 3  # a task whose worker process or node dies is run again, this many times at most
LOST_WORKERS = 20  # workers lost (process or node died, or failed to start) before the executor gives up
PUBLISH_ATTEMPTS = 3  # a run failing verification on the driver is trained again, this many times
REACH_TIMEOUT_S = 5
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SAY_EVERY_S = 15  # how often a driver waiting for a CPU in the cluster says so
PAYLOAD = tuple(name for name in RUN_FILES if name != "config.json")  # config.json: the driver's own
# A worker lost (its process or node died) takes its task back to the queue; how Ray says so.
WORKER_LOST = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
               ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError)


@contextmanager
def _stderr_to(path: Path):
    """Send file descriptor 2 (where Ray's C++ core logs) to `path` for the duration."""
    saved = os.dup(2)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def connect(address: str | None) -> None:
    """Join the cluster at `address` ("auto", "host:port"), or start Ray here if None.

    Token authentication stays as Ray sets it (on by default for a local instance; a cluster's
    token comes from $RAY_AUTH_TOKEN or ~/.ray/auth_token); Ray's web dashboard is never started.
    """
    if ray.is_initialized():
        return
    if address and address != "auto":
        match = re.fullmatch(r"(?:ray://)?\[?([^\s\[\]]+?)\]?:(\d{1,5})", address)
        if not match:
            raise ConfigError(f"Ray address must be auto or host:port, not {address!r}")
        try:
            speaks_grpc = _speaks_grpc(match[1], int(match[2]))
        except (UnicodeError, ValueError):  # a host label over 63 characters, a port over 65535
            raise ConfigError(f"Ray address {address!r} has no valid host name and port") from None
        except OSError as exc:
            raise ClusterError(f"cannot reach the Ray cluster at {address} "
                               f"({exc.strerror or exc}); start its head with `ray start --head` "
                               "or fix --ray-address / $MNIST_LAB_RAY_ADDRESS") from None
        if not speaks_grpc:
            raise ClusterError(f"{address} answers, but not as a Ray cluster's head does (it does "
                               "not speak gRPC); give the head's address, host:6379 by default "
                               "(`ray status` on the head prints it)")
        not_ray = _not_ray_gcs(match[1], int(match[2]))
        if not_ray:
            raise ClusterError(f"{address} speaks gRPC, but is not a Ray cluster's head ({not_ray}); "
                               "give the head's address, host:6379 by default (`ray status` on the "
                               "head prints it)")
    options = dict(logging_level=logging.WARNING, log_to_driver=False,
                   runtime_env={"py_modules": [str(Path(__file__).resolve().parent)],
                                "excludes": ["cached_results"]})  # inside the package once installed
    if address is None:
        options["include_dashboard"] = False
    with tempfile.TemporaryDirectory() as scratch:
        core_log = Path(scratch) / "ray-init.log"
        try:
            if address is None:
                _reap_agents_when_we_end()
            with _stderr_to(core_log):
                ray.init(address=address, **options)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
            said = core_log.read_text(errors="replace")
            if "InvalidAuthToken" in said or "token" in str(exc).lower():
                raise ClusterError(f"the Ray cluster at {address} refused our authentication token; "
                                   "set RAY_AUTH_TOKEN (or ~/.ray/auth_token) to the head's token "
                                   "(`ray get-auth-token` on the head prints it)"
                                   + ("" if os.environ.get("RAY_AUTH_MODE") == "token" else
                                      " and RAY_AUTH_MODE=token")) from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = address or "this machine"
            raise ClusterError(f"cannot join the Ray cluster at {where}: {first}") from None


def _speaks_grpc(host: str, port: int) -> bool:
    """True if `host:port` answers an HTTP/2 greeting with HTTP/2 settings, as Ray's gRPC servers
    do (an HTTP/1 server, or anything else, does not). Raises OSError if it cannot be reached."""
    if os.environ.get("RAY_USE_TLS", "0") not in ("", "0"):
        return True  # a TLS server answers a plain greeting with nothing useful; let Ray try
    with socket.create_connection((host, port), timeout=REACH_TIMEOUT_S) as conn:
        conn.sendall(HTTP2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS frame
        head = b""
        deadline = time.monotonic() + REACH_TIMEOUT_S
        try:
            while len(head) < 9 and time.monotonic() < deadline:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except (TimeoutError, ConnectionError):
            return False
    return len(head) == 9 and head[3] == 0x04  # a frame of type SETTINGS


def _not_ray_gcs(host: str, port: int) -> str | None:
    """Why the gRPC server at `host:port` is not a Ray head (a call to Ray's GCS it does not
    serve, or does not answer in REACH_TIMEOUT_S), or None if it is one. Any HTTP/2 server
    answers the greeting; ray.init at one that is not Ray waited silently for minutes."""
    if os.environ.get("RAY_USE_TLS", "0") not in ("", "0"):
        return None
    import grpc

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetClusterId")
        try:
            call(b"", timeout=REACH_TIMEOUT_S)  # an empty GetClusterIdRequest
        except grpc.RpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                return None  # a Ray head asking for its token: ray.init says what to do
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return f"no answer to a call of Ray's within {REACH_TIMEOUT_S} s"
            return f"it answered a call of Ray's with {code.name}"
    return None


def _reap_agents_when_we_end() -> None:
    """Start mnist_core.ray_reaper for the Ray instance this process is about to start here."""
    subprocess.Popen([sys.executable, "-m", "mnist_core.ray_reaper", str(os.getpid())],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, cwd=Path(__file__).resolve().parent.parent)


def describe_cluster() -> dict:
    """Alive nodes and CPUs of the connected cluster."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    cpus = int(sum(n.get("Resources", {}).get("CPU", 0) for n in nodes))
    return {"nodes": len(nodes), "cpus": cpus}


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Epochs done per task and each run's curves so far, reported by the tasks and read by the driver."""

    def __init__(self):
        self.done: dict[int, int] = {}
        self.curves: dict[str, dict] = {}

    def report(self, task: int, epochs: int, curves: dict) -> None:
        self.done[task] = max(self.done.get(task, 0), epochs)
        self.curves.update(curves)

    def snapshot(self) -> tuple[dict[int, int], dict[str, dict]]:
        return dict(self.done), dict(self.curves)


@ray.remote(num_cpus=1, max_restarts=0)
class Trainer:
    """One CPU of the cluster for as long as the executor keeps it: TensorFlow imported, MNIST
    checked and each fused layout compiled once, so that a task pays for its training and little else."""

    def __init__(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        from .fused import CompiledGraphs

        threads = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # this worker process ran TensorFlow before; its threads are already set
        self.data: MNIST | None = None
        self.local = LocalExecutor(CompiledGraphs())

    def where(self) -> dict:
        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def train(self, config_dicts: list[dict], arrays: list[ray.ObjectRef], fingerprint: str,
              fused: bool, task: int, board) -> dict:
        """Train configs into a temporary store; return each run's files."""
        started = time.perf_counter()
        if self.data is None or self.data.fingerprint != fingerprint:
            data = mnist_from_arrays(dict(ray.get(arrays[0])), source="Ray object store")
            if data.fingerprint != fingerprint:
                raise MNISTError("the MNIST arrays that reached this worker do not match the "
                                 "driver's fingerprint")
            self.data = data
        configs = [RunConfig.from_dict(c) for c in config_dicts]

        def on_epoch(done: int, curves: dict) -> None:
            board.report.remote(task, done, curves)

        with tempfile.TemporaryDirectory(prefix="mnist-lab-task-") as folder:
            runs = self.local.train(configs, self.data, RunStore(folder), fused, False, on_epoch)
            payload = [{"key": run.key, "files": {name: (run.path / name).read_bytes() for name in PAYLOAD}}
                       for run in runs]
        return {"task": task, **self.where(), "seconds": time.perf_counter() - started, "runs": payload}


class _Worker:
    """A Trainer actor as the driver sees it: starting (`starting` is the ref that resolves once
    it is up), idle, or running a task."""

    def __init__(self):
        self.actor = Trainer.remote()
        self.starting: ray.ObjectRef | None = self.actor.where.remote()
        self.busy = False


class RayExecutor:
    """Trains on a Ray cluster (joined at `address`, or started on this machine if None).

    Keeps one Trainer actor per CPU of the cluster and hands tasks (`plan_tasks`), costliest
    first, to whichever is free. With `keep_workers` they stay up between `train` calls until
    `close()` or the end of this process (a command's duration); otherwise each `train` call
    ends them, so that a long-lived process holds no CPU of the cluster while it does not train.
    """

    def __init__(self, address: str | None = None, wait_timeout: float | None = None,
                 keep_workers: bool = False):
        self.address = address
        self.wait_timeout = wait_timeout  # give up after waiting this long for a CPU in the cluster
        self.keep_workers = keep_workers
        self._data: tuple[str, ray.ObjectRef] | None = None
        self._board = None
        self._workers: list[_Worker] = []
        self._lost = 0
        self._tasks_submitted = 0
        self.task_reports: list[dict] = []  # one per finished task: node, seconds, runs

    def cluster(self) -> dict:
        """Alive nodes and CPUs of the cluster (joining it first)."""
        connect(self.address)
        return describe_cluster()

    def where(self) -> str:
        return cluster_words(self.cluster())

    def close(self) -> None:
        """End the Trainer actors (their CPUs go back to the cluster)."""
        for worker in self._workers:
            ray.kill(worker.actor)
        self._workers.clear()

    def _grow(self, cpus: int) -> None:
        """One Trainer per CPU alive in the cluster (those beyond the free CPUs wait for one)."""
        self._workers += [_Worker() for _ in range(cpus - len(self._workers))]

    def _lose(self, worker: _Worker, why: Exception) -> None:
        """Forget a worker whose process or node died, and start another if a CPU is there."""
        self._workers.remove(worker)
        ray.kill(worker.actor)
        self._lost += 1
        if self._lost > LOST_WORKERS:
            raise ClusterError(f"training workers keep dying on Ray ({self._lost} lost), the last one: "
                               f"{_last_words(why)}")
        self._grow(describe_cluster()["cpus"])

    def _progress_board(self):
        """One board per executor, on the driver's node (it costs a worker process to start)."""
        if self._board is None:
            here = ray.get_runtime_context().get_node_id()
            self._board = ProgressBoard.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True)).remote()
        return self._board

    def _data_ref(self, data: MNIST) -> ray.ObjectRef:
        if self._data is None or self._data[0] != data.fingerprint:
            self._data = (data.fingerprint, ray.put({name: getattr(data, name) for name in EXPECTED_SHAPES}))
        return self._data[1]

    def train(self, configs, data, store, fused=True, progress=True, on_epoch=None) -> Iterator[Run]:
        connect(self.address)
        cluster = describe_cluster()
        by_key = {c.key(data.fingerprint): c for c in configs}
        board = self._progress_board()
        arrays = [self._data_ref(data)]  # in a list: a worker fetches it only the first time
        tasks = plan_tasks(configs, cluster["cpus"], fused)
        queue: list[tuple[list[RunConfig], int]] = [(task_configs, 1) for task_configs in tasks]
        running: dict[ray.ObjectRef, tuple[_Worker, int, list[RunConfig], int]] = {}
        published: set[str] = set()
        epochs: dict[int, int] = {}
        self._grow(cluster["cpus"])

        def submit(worker: _Worker, task_configs: list[RunConfig], attempt: int) -> None:
            task = self._tasks_submitted
            self._tasks_submitted += 1
            epochs[task] = max(c.epochs for c in task_configs)
            worker.busy = True
            ref = worker.actor.train.remote([c.to_dict() for c in task_configs], arrays, data.fingerprint,
                                            fused, task, board)
            running[ref] = (worker, task, task_configs, attempt)

        label = (f"{_count(len(configs), 'run')} in {_count(len(queue), 'task')} on "
                 f"{cluster_words(cluster)}")
        shown, finished = 0, set()
        total_epochs = sum(max(c.epochs for c in t) for t, _ in queue)
        # Ray's own messages while tasks run (retries, memory pressure) are printed to stdout,
        # which holds a command's results: they go to stderr with our progress.
        with tqdm(total=total_epochs, desc=label, unit="epoch", disable=not progress,
                  leave=False) as bar, self._ended_unless_kept(), redirect_stdout(sys.stderr):
            starved = _Starved(self.wait_timeout)
            while queue or running:
                for worker in [w for w in self._workers if w.starting is None and not w.busy]:
                    if queue:
                        submit(worker, *queue.pop(0))
                starting = {w.starting: w for w in self._workers if w.starting is not None}
                ready, _ = ray.wait([*running, *starting], num_returns=1, timeout=1.0)
                starved.check(len(queue) + len(running),
                              sum(w.starting is None for w in self._workers))
                for ref in ready:
                    if ref in starting:
                        self._started(starting[ref])
                        continue
                    worker, task, task_configs, attempt = running.pop(ref)
                    worker.busy = False
                    result = self._result(ref, task_configs, attempt)
                    if isinstance(result, Exception):  # the worker was lost: its task goes back, first
                        self._lose(worker, result)
                        queue.insert(0, (task_configs, attempt + 1))
                        continue
                    finished.add(task)
                    self.task_reports.append({k: result[k] for k in ("task", "node", "pid", "seconds")}
                                             | {"runs": [c.label for c in task_configs],
                                                "estimate": cost(task_configs), "arrived": time.monotonic()})
                    rejected = False
                    for item in result["runs"]:
                        config = by_key.get(item["key"])
                        if config is None:
                            raise ClusterError(f"a task returned run {item['key'][:12]}, not asked for")
                        if item["key"] in published:
                            continue  # from a task run again for a companion's sake
                        try:
                            yield store.publish(item["key"], config, data.fingerprint, _writer(item["files"]))
                            published.add(item["key"])
                        except RunRejected as exc:
                            if attempt >= PUBLISH_ATTEMPTS:
                                raise
                            log.warning("%s; training it again", exc)
                            rejected = True
                    if rejected:  # the whole task again: each model keeps the companions it had
                        queue.insert(0, (task_configs, attempt + 1))
                shown = self._show_progress(board, epochs, finished, bar, shown, on_epoch)

    def _started(self, worker: _Worker) -> None:
        try:
            ray.get(worker.starting)
            worker.starting = None
        except WORKER_LOST as exc:
            self._lose(worker, exc)
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"a training worker could not start on Ray: {_last_words(exc)}") from None

    @contextmanager
    def _ended_unless_kept(self):
        """End the workers when `train` ends (kept ones too when it ends early: they may be
        running tasks of a request no one waits for any more)."""
        try:
            yield
        except BaseException:
            self.close()
            raise
        if not self.keep_workers:
            self.close()

    @staticmethod
    def _result(ref: ray.ObjectRef, task_configs: list[RunConfig], attempt: int) -> dict | Exception:
        """The task's result; what Ray said if its worker was lost and the task may be run again."""
        try:
            return ray.get(ref)
        except WORKER_LOST as exc:
            if attempt > TASK_RETRIES:
                raise ClusterError(f"training {', '.join(c.label for c in task_configs)} on Ray failed: "
                                   f"its worker was lost {attempt} times, the last time: "
                                   f"{_last_words(exc)}") from None
            log.warning("a Ray worker was lost (%s); its task goes to another", _last_words(exc))
            return exc
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"training {', '.join(c.label for c in task_configs)} on Ray failed: "
                               f"{_last_words(exc)}") from None

    @staticmethod
    def _show_progress(board, epochs, finished, bar, shown, on_epoch) -> int:
        """Move the bar to the epochs done so far (as the tasks report them; all of a finished
        task's), and tell `on_epoch` as a share of the most epochs any task trains."""
        if not epochs:
            return shown  # no worker has started yet
        try:
            done, curves = ray.get(board.snapshot.remote(), timeout=5)
        except ray.exceptions.RayError:
            done, curves = {}, {}  # progress is best effort; the results are what count
        total = sum(e if t in finished else min(done.get(t, 0), e) for t, e in epochs.items())
        bar.update(total - bar.n)
        equivalent = int(max(epochs.values()) * total / max(sum(epochs.values()), 1))
        if on_epoch and equivalent > shown:
            on_epoch(equivalent, curves)
        return max(shown, equivalent)

    def summary(self) -> str | None:
        """Which nodes took part and how long each task took."""
        if not self.task_reports:
            return None
        nodes = {r["node"] for r in self.task_reports}
        cluster = describe_cluster()
        times = ", ".join(f"{r['seconds']:.1f} s" for r in sorted(self.task_reports, key=lambda r: r["task"]))
        tasks = _count(len(self.task_reports), "task")
        return (f"Ray: {tasks} on {len(nodes)} of the {cluster['nodes']} nodes "
                f"({cluster['cpus']} CPUs in the cluster); task times: {times}")


class _Starved:
    """Says, every SAY_EVERY_S, when tasks wait because the cluster has no CPU alive, or because
    none of our workers has started (its CPUs busy with other work: another command keeps its
    workers while it runs), and gives up after `wait_timeout` seconds of that (None: waits,
    saying so)."""

    def __init__(self, wait_timeout: float | None):
        self.wait_timeout = wait_timeout
        self.since: float | None = None
        self.idle_since = time.monotonic()
        self.checked = 0.0

    def check(self, queued: int, working: int) -> None:
        now = time.monotonic()
        if working:
            self.idle_since = now
        if now - self.checked < min(SAY_EVERY_S, self.wait_timeout or SAY_EVERY_S):
            return
        self.checked = now
        cpus = describe_cluster()["cpus"]
        if cpus > 0:
            self.since = None
            self._busy(queued, cpus, now - self.idle_since)
            return
        self.since = self.since or now
        waited = now - self.since
        if self.wait_timeout is not None and waited >= self.wait_timeout:
            raise ClusterError(f"gave up after {waited:.0f} s: the Ray cluster has no node with a CPU "
                               f"to run {queued} training task(s); start one with `ray start --address ...`")
        log.warning("waiting for a CPU: the Ray cluster has no node with a CPU alive for %d queued "
                    "task(s); waited %.0f s (start a worker node, or --wait-timeout gives up)",
                    queued, waited)

    def _busy(self, queued: int, cpus: int, waited: float) -> None:
        if waited < SAY_EVERY_S or not queued:
            return  # workers take a few seconds to start (TensorFlow's import)
        if self.wait_timeout is not None and waited >= self.wait_timeout:
            raise ClusterError(f"gave up after {waited:.0f} s: none of the Ray cluster's {cpus} CPU(s) "
                               f"came free to run {queued} training task(s); they may be busy with "
                               "another command, which keeps its workers until it ends")
        log.warning("waiting for a CPU: none of the Ray cluster's %d CPU(s) has come free for %d "
                    "queued task(s) in %.0f s (another command keeps its workers until it ends; "
                    "--wait-timeout gives up)", cpus, queued, waited)


def _last_words(exc: Exception) -> str:
    cause = getattr(exc, "cause", None) or exc
    words = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {words[-1] if words else ''}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _writer(files: dict[str, bytes]):
    def write(folder: Path) -> None:
        for name in PAYLOAD:
            if not isinstance(files.get(name), bytes):
                raise RunRejected(f"the returned run lacks {name}")
            (folder / name).write_bytes(files[name])
    return write
