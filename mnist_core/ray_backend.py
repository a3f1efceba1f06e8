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

from .configs import ConfigError, RunConfig, group_key
from .data import EXPECTED_SHAPES, MNIST, MNISTError, mnist_from_arrays
from .executors import ClusterError, LocalExecutor, cluster_words
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
PUBLISH_ATTEMPTS = 3  # a run failing verification on the driver is trained again, this many times
REACH_TIMEOUT_S = 5
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SAY_EVERY_S = 15  # how often a driver waiting for a CPU in the cluster says so
PAYLOAD = tuple(name for name in RUN_FILES if name != "config.json")  # config.json: the driver's own
# Multiply-adds per image of the CNNs (counted from models.py's layers), to weigh tasks.
CNN_MACS_PER_IMAGE = {"cnn": 2_800_000, "improved_cnn": 18_700_000}
# A training step's time on one CPU, roughly: a fixed part per fused shape group (graph dispatch,
# Adam's updates, many small ops) and a part per multiply-add of the batch. Fitted to this
# machine: a width-sweep epoch on 1 thread, the 1200/480 MLP alone 14.3 s, the other ten
# shapes fused 36.7 s; the CNNs' epoch times (37 s and 106 s on 2 cores). Only the ratios
# matter: they decide how tasks are balanced.
STEP_S = 1.2e-3
MAC_S = {"mlp": 1.25e-10, "cnn": 3.9e-10, "improved_cnn": 1.5e-10}


def _macs_per_image(config: RunConfig) -> int:
    if config.model != "mlp":
        return CNN_MACS_PER_IMAGE[config.model]
    widths = (28 * 28, *config.hidden, 10)
    return sum(a * b for a, b in zip(widths, widths[1:]))


def cost(configs: RunConfig | list[RunConfig]) -> float:
    """Estimated seconds on one CPU to train `configs` in one task (one fused group per shape)."""
    configs = [configs] if isinstance(configs, RunConfig) else configs
    total = 0.0
    for config in configs:
        steps = -(-(config.limit or 60_000) // config.batch_size) * config.epochs
        total += steps * MAC_S[config.model] * _macs_per_image(config) * config.batch_size
    for _, _, epochs, limit, batch in {(c.model, c.hidden, c.epochs, c.limit, c.batch_size) for c in configs}:
        total += -(-(limit or 60_000) // batch) * epochs * STEP_S
    return total


def plan_tasks(configs: list[RunConfig], workers: int, fused: bool = True) -> list[list[RunConfig]]:
    """Split `configs` into tasks, costliest first, so that `workers` CPUs are all busy.

    MLPs that could share a fused graph are dealt into at most `workers` tasks of about equal
    estimated time (largest first, each to the lightest task); every other run is a task of its own.
    Models of one shape are dealt in pairs (a trio for an odd count), never alone when they
    have company: XLA computes a stack of one model with other kernels than a stack of two or
    more, which would change the last bits of its weights, while stacks of 2, 3, 4 or 5 models
    give each model bit-identical weights (measured; see tests/test_ray.py).
    """
    tasks: list[list[RunConfig]] = []
    groups: dict[tuple, list[RunConfig]] = {}
    for config in configs:
        if fused and config.model == "mlp":
            groups.setdefault(group_key(config), []).append(config)
        else:
            tasks.append([config])
    for group in groups.values():
        units = []  # what may go to different tasks: a shape's models, two or three at a time
        for shape in dict.fromkeys(c.hidden for c in group):
            same = [c for c in group if c.hidden == shape]
            pairs = [same[i:i + 2] for i in range(0, len(same), 2)]
            if len(pairs) > 1 and len(pairs[-1]) == 1:
                single = pairs.pop()
                pairs[-1] += single
            units += pairs
        bins: list[list[RunConfig]] = [[] for _ in range(min(len(units), max(workers, 1)))]
        loads = [0.0] * len(bins)
        for unit in sorted(units, key=cost, reverse=True):
            lightest = loads.index(min(loads))
            bins[lightest] += unit
            loads[lightest] += cost(unit)
        tasks.extend(bins)
    return sorted(tasks, key=cost, reverse=True)


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
    options = dict(logging_level=logging.WARNING, log_to_driver=False,
                   runtime_env={"py_modules": [str(Path(__file__).resolve().parent)]})
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
    """Epochs done per task, reported by the tasks and read by the driver."""

    def __init__(self):
        self.done: dict[int, int] = {}

    def report(self, task: int, epochs: int) -> None:
        self.done[task] = max(self.done.get(task, 0), epochs)

    def snapshot(self) -> dict[int, int]:
        return dict(self.done)


@ray.remote(num_cpus=1, max_retries=TASK_RETRIES)
def train_task(config_dicts: list[dict], arrays: dict, fingerprint: str, fused: bool,
               task: int, board) -> dict:
    """Train configs on this worker into a temporary store; return each run's files."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    threads = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # this worker process ran TensorFlow before; its threads are already set
    data = mnist_from_arrays(dict(arrays), source="Ray object store")
    if data.fingerprint != fingerprint:
        raise MNISTError("the MNIST arrays that reached this worker do not match the driver's fingerprint")
    configs = [RunConfig.from_dict(c) for c in config_dicts]
    started = time.perf_counter()

    def on_epoch(done: int, logs: dict) -> None:
        board.report.remote(task, done)

    with tempfile.TemporaryDirectory(prefix="mnist-lab-task-") as folder:
        runs = LocalExecutor().train(configs, data, RunStore(folder), fused, False, on_epoch)
        payload = [{"key": run.key, "files": {name: (run.path / name).read_bytes() for name in PAYLOAD}}
                   for run in runs]
    return {"task": task, "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
            "seconds": time.perf_counter() - started, "runs": payload}


class RayExecutor:
    """Trains on a Ray cluster (joined at `address`, or started on this machine if None)."""

    def __init__(self, address: str | None = None, wait_timeout: float | None = None):
        self.address = address
        self.wait_timeout = wait_timeout  # give up after waiting this long for a CPU in the cluster
        self._data: tuple[str, ray.ObjectRef] | None = None
        self._board = None
        self._tasks_submitted = 0
        self.task_reports: list[dict] = []  # one per finished task: node, seconds, runs

    def cluster(self) -> dict:
        """Alive nodes and CPUs of the cluster (joining it first)."""
        connect(self.address)
        return describe_cluster()

    def where(self) -> str:
        return cluster_words(self.cluster())

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
        arrays = self._data_ref(data)
        pending: dict[ray.ObjectRef, tuple[int, list[RunConfig], int]] = {}
        published: set[str] = set()
        epochs: dict[int, int] = {}

        def submit(task_configs: list[RunConfig], attempt: int) -> None:
            task = self._tasks_submitted
            self._tasks_submitted += 1
            epochs[task] = max(c.epochs for c in task_configs)
            ref = train_task.remote([c.to_dict() for c in task_configs], arrays, data.fingerprint,
                                    fused, task, board)
            pending[ref] = (task, task_configs, attempt)

        for task_configs in plan_tasks(configs, cluster["cpus"], fused):
            submit(task_configs, 1)
        label = (f"{_count(len(configs), 'run')} in {_count(len(pending), 'task')} on "
                 f"{cluster_words(cluster)}")
        shown, finished = 0, set()
        # Ray's own messages while tasks run (retries, memory pressure) are printed to stdout,
        # which holds a command's results: they go to stderr with our progress.
        with tqdm(total=sum(epochs.values()), desc=label, unit="epoch", disable=not progress,
                  leave=False) as bar, _cancelled_on_exit(pending), redirect_stdout(sys.stderr):
            starved = _Starved(self.wait_timeout)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                starved.check(len(pending))
                for ref in ready:
                    task, task_configs, attempt = pending.pop(ref)
                    result = self._result(ref, task_configs)
                    finished.add(task)
                    self.task_reports.append({k: result[k] for k in ("task", "node", "pid", "seconds")}
                                             | {"runs": [c.label for c in task_configs]})
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
                        submit(task_configs, attempt + 1)
                shown = self._show_progress(board, epochs, finished, bar, shown, on_epoch)

    @staticmethod
    def _result(ref: ray.ObjectRef, task_configs: list[RunConfig]) -> dict:
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            words = str(cause).strip().splitlines()
            raise ClusterError(f"training {', '.join(c.label for c in task_configs)} on Ray failed: "
                               f"{type(cause).__name__}: {words[-1] if words else ''}") from None

    @staticmethod
    def _show_progress(board, epochs, finished, bar, shown, on_epoch) -> int:
        """Move the bar to the epochs done so far (as the tasks report them; all of a finished
        task's), and tell `on_epoch` as a share of the most epochs any task trains."""
        try:
            done = ray.get(board.snapshot.remote(), timeout=5)
        except ray.exceptions.RayError:
            done = {}  # progress is best effort; the results are what count
        total = sum(e if t in finished else min(done.get(t, 0), e) for t, e in epochs.items())
        bar.update(total - bar.n)
        equivalent = int(max(epochs.values()) * total / max(sum(epochs.values()), 1))
        if on_epoch and equivalent > shown:
            on_epoch(equivalent, {})
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
    """Says, every SAY_EVERY_S, when tasks wait because the cluster has no CPU alive, and gives
    up after `wait_timeout` seconds of that (None: waits, saying so)."""

    def __init__(self, wait_timeout: float | None):
        self.wait_timeout = wait_timeout
        self.since: float | None = None
        self.checked = 0.0

    def check(self, queued: int) -> None:
        now = time.monotonic()
        if now - self.checked < min(SAY_EVERY_S, self.wait_timeout or SAY_EVERY_S):
            return
        self.checked = now
        if describe_cluster()["cpus"] > 0:
            self.since = None
            return
        self.since = self.since or now
        waited = now - self.since
        if self.wait_timeout is not None and waited >= self.wait_timeout:
            raise ClusterError(f"gave up after {waited:.0f} s: the Ray cluster has no node with a CPU "
                               f"to run {queued} training task(s); start one with `ray start --address ...`")
        log.warning("waiting for a CPU: the Ray cluster has no node with a CPU alive for %d queued "
                    "task(s); waited %.0f s (start a worker node, or --wait-timeout gives up)",
                    queued, waited)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


@contextmanager
def _cancelled_on_exit(pending: dict):
    """Cancel the tasks still pending when the driver stops early (an error, Ctrl-C)."""
    try:
        yield
    finally:
        for ref in list(pending):
            ray.cancel(ref, force=True)


def _writer(files: dict[str, bytes]):
    def write(folder: Path) -> None:
        for name in PAYLOAD:
            if not isinstance(files.get(name), bytes):
                raise RunRejected(f"the returned run lacks {name}")
            (folder / name).write_bytes(files[name])
    return write
