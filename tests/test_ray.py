"""Training on a real two-node Ray cluster (both nodes on this machine, 1 CPU each, token auth on)."""

import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_core.backends import RAY_ADDRESS_ENV, executor_for
from mnist_core.catalog import lambda_configs, width_configs
from mnist_core.configs import ConfigError
from mnist_core.store import RunStore, StoreChain
from mnist_core.sweeps import ensure_runs

# Token authentication on, with a token of this test run's own. Ray reads these once, when it is
# first imported, so they are set before that and stay for the session.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from mnist_core.ray_backend import RayExecutor  # noqa: E402

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parent.parent
TINY = dict(epochs=2, limit=2000)


@pytest.fixture(scope="module")
def cluster():
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def cli(*args, env=None, **options):
    return subprocess.Popen([sys.executable, "-m", "mnist_core", *args], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **options)


def waiting_sweep(address: str, store: Path):
    """A `sweep` against `address` with --wait-timeout 3, started now and waited for in a thread:
    (process, when it started, [when it ended], the thread, its store)."""
    started = time.monotonic()
    process = cli("sweep", "lambda", "--values", "0.0002", "--epochs", "1", "--limit", "2000",
                  "--no-committed", "--store", str(store), "--backend", "ray",
                  "--ray-address", address, "--wait-timeout", "3", "--quiet")
    ended = []
    waiter = threading.Thread(target=lambda: (process.wait(), ended.append(time.monotonic())), daemon=True)
    waiter.start()
    return process, started, ended, waiter, store


@pytest.fixture(scope="module")
def starved(tmp_path_factory):
    """A waiting sweep against a cluster with no CPU at all, started at once to run alongside
    the other tests."""
    idle = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    sweep = waiting_sweep(idle.address, tmp_path_factory.mktemp("starved") / "store")
    yield sweep
    sweep[3].join(timeout=60)
    idle.shutdown()


HOLD_A_CPU = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
@ray.remote(num_cpus=1)
class Holder:
    def ping(self):
        return 1
holder = Holder.remote()
ray.get(holder.ping.remote())
print("holding", flush=True)
time.sleep(300)
"""


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """A waiting sweep against a one-CPU cluster whose CPU another driver holds (as another
    command's workers do until it ends), started at once to run alongside."""
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_CPU, nodes.address], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    assert holder.stdout.readline().strip() == "holding"
    sweep = waiting_sweep(nodes.address, tmp_path_factory.mktemp("busy") / "store")
    yield sweep
    sweep[3].join(timeout=90)
    holder.kill()
    nodes.shutdown()


@pytest.mark.usefixtures("refused", "starved", "busy")  # started first, so that they run alongside
def test_a_sweep_spread_over_two_nodes_equals_the_local_one(cluster, mnist, tmp_path, monkeypatch):
    """...and a returned run that fails verification on the driver is trained again, never stored."""
    from mnist_core import ray_backend

    writers = []
    real_writer = ray_backend._writer

    def damaging_the_first(files):
        writers.append(files)
        if len(writers) == 1:  # an accuracy over 1
            files = {**files, "metrics.json": files["metrics.json"].replace(b'"test_accuracy": 0',
                                                                            b'"test_accuracy": 9')}
        return real_writer(files)

    monkeypatch.setattr(ray_backend, "_writer", damaging_the_first)
    configs = lambda_configs([0, 0.001, 0.01, 0.1], [0], **TINY) + width_configs([(600, 240)], [0, 1], **TINY)
    executor = RayExecutor(cluster.address)
    published = []
    on_ray = RunStore(tmp_path / "ray")
    original = on_ray.publish
    on_ray.publish = lambda key, *rest: published.append(key) or original(key, *rest)
    epochs_seen, curves_seen = [], {}
    remote = ensure_runs(configs, mnist, StoreChain(on_ray), progress=False, executor=executor,
                         on_epoch=lambda done, curves: (epochs_seen.append(done), curves_seen.update(curves)))
    local = ensure_runs(configs[:4], mnist, StoreChain(RunStore(tmp_path / "local")), progress=False)
    # A wide layer's matmul is split among the threads, which orders its sums by their number: the
    # local run to compare a wide model with is one on one CPU, as a Ray worker has.
    one_cpu = cli("sweep", "width", "--widths", "600:240", "--seeds", "0,1", "--epochs", "2",
                  "--limit", "2000", "--no-committed", "--store", str(tmp_path / "one-cpu"), "--quiet",
                  env={"MNIST_PATH": mnist.source}, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    assert one_cpu.wait(timeout=120) == 0, one_cpu.stderr.read()
    local += [RunStore(tmp_path / "one-cpu").get(c.key(mnist.fingerprint)) for c in configs[4:]]

    assert len({r["node"] for r in executor.task_reports}) == 2  # both nodes trained
    # 4 tasks: two pairs of 25-15 MLPs, each 600-240 alone (a wide model); and one run again
    assert "5 tasks on 2 of the 2 nodes (2 CPUs" in executor.summary()
    assert len(writers) == 7  # 6 runs, one of them twice
    assert sorted(published) == sorted([*(r.key for r in remote), published[0]])
    assert sorted(p.name for p in on_ray.root.iterdir() if p.name[0] != ".") == sorted(r.key for r in remote)
    assert epochs_seen == sorted(epochs_seen) and epochs_seen[-1] == 2 and set(epochs_seen) <= {1, 2}
    keys = [c.key(mnist.fingerprint) for c in configs]
    assert curves_seen and set(curves_seen) <= set(keys)  # the tasks' curves reach the driver as they train
    assert all(len(curve["val_loss"]) in (1, 2) for curve in curves_seen.values())
    for a, b in zip(remote, local, strict=True):  # 25-15 stacked 2 to a task there, 4 here: the same bits
        assert a.key == b.key and a.path.parent == tmp_path / "ray"
        for wa, wb in zip(a.load_model().get_weights(), b.load_model().get_weights()):
            np.testing.assert_array_equal(wa, wb)
        assert a.metrics["test_accuracy"] == b.metrics["test_accuracy"]
        # Weights and training curves bit for bit. Scoring and validation run the whole test set
        # in large batches, whose products and sums TensorFlow splits by the threads it has (1 on
        # a Ray worker): the same to float32 rounding, at most one float16 step apart as stored.
        ha, hb = a.history(), b.history()
        assert ha[["epoch", "loss", "accuracy"]].equals(hb[["epoch", "loss", "accuracy"]])
        np.testing.assert_allclose(ha["val_loss"], hb["val_loss"], rtol=1e-5)
        assert np.abs(ha["val_accuracy"] - hb["val_accuracy"]).max() <= 1e-4 + 1e-9  # one image
        pa, pb = a.predictions(), b.predictions()
        step = np.spacing(np.maximum(pa, pb).astype(np.float16)).astype(np.float32)
        assert (np.abs(pa.astype(np.float32) - pb) <= step).all()
        assert (pa.argmax(axis=1) == pb.argmax(axis=1)).mean() >= 0.9999


def test_a_worker_killed_mid_task_is_run_again_and_each_run_published_once(cluster, mnist, tmp_path):
    configs = lambda_configs([0, 0.01], [1], epochs=3, limit=6000)
    store = RunStore(tmp_path / "store")
    published = []
    original = store.publish
    store.publish = lambda key, *rest: published.append(key) or original(key, *rest)
    killed = []

    def kill_a_training_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            found = subprocess.run(["pgrep", "-f", "^ray::Trainer.train"], capture_output=True, text=True)
            pids = [int(p) for p in found.stdout.split()]
            if pids:
                time.sleep(2)  # well into the task: MNIST received, TensorFlow loaded or loading
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.2)

    killer = threading.Thread(target=kill_a_training_worker, daemon=True)
    killer.start()
    executor = RayExecutor(cluster.address)
    runs = ensure_runs(configs, mnist, StoreChain(store), progress=False, executor=executor)
    killer.join()
    assert killed, "no training worker was found to kill"
    assert killed[0] not in {r["pid"] for r in executor.task_reports}  # its task ran again elsewhere
    assert sorted(published) == sorted(c.key(mnist.fingerprint) for c in configs)
    assert [r.key for r in runs] == [c.key(mnist.fingerprint) for c in configs]
    assert sorted(p.name for p in store.root.iterdir() if not p.name.startswith(".")) == sorted(published)


def test_a_killed_driver_publishes_nothing_half_and_the_same_command_reuses_its_runs(cluster, tmp_path):
    store = tmp_path / "store"
    command = ["sweep", "width", "--widths", "10:5,400:160", "--epochs", "1", "--limit", "3000",
               "--store", str(store), "--no-committed", "--quiet", "--backend", "ray",
               "--ray-address", cluster.address]
    driver = cli(*command)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if any(not p.name.startswith(".") for p in store.glob("*")):
            break  # the first run is published
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    stored = RunStore(store)
    first = {k: (stored.path(k).stat().st_ino, stored.get(k).metrics["created"]) for k in stored.keys()}
    assert len(first) >= 1 and all(stored.get(k) is not None for k in first)  # whole runs only

    again = cli(*command)
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err
    assert len(stored.keys()) == 2
    for key, (inode, created) in first.items():  # published runs were reused, not retrained
        assert stored.path(key).stat().st_ino == inode and stored.get(key).metrics["created"] == created
    trained_again = 2 - len(first)
    assert (f"Ray: {trained_again} task" in err) if trained_again else ("Ray:" not in err)


@pytest.fixture(scope="module")
def refused(cluster):
    """A `sweep` with the wrong token, started at once: Ray takes 20 s to refuse it, during which
    the other tests run."""
    started = time.monotonic()
    process = cli("sweep", "lambda", "--values", "0.0002", "--epochs", "1", "--limit", "2000",
                  "--no-committed", "--store", tempfile.mkdtemp(), "--backend", "ray",
                  "--ray-address", cluster.address, env={"RAY_AUTH_TOKEN": "not-the-token"})
    ended = []
    waiter = threading.Thread(target=lambda: (process.wait(), ended.append(time.monotonic())), daemon=True)
    waiter.start()
    yield process, started, ended, waiter


@pytest.fixture(scope="module")
def web_server():
    """A port that answers, but HTTP/1 (python -m http.server), not Ray."""
    import http.server

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("address, says", [
    ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
    ("no-port-here", "Ray address must be auto or host:port"),
    ("WEB", "answers, but not as a Ray cluster's head does"),
    ("a" * 64 + ".example:6379", "has no valid host name and port"),
])
def test_an_unreachable_cluster_exits_2_with_one_line(address, says, web_server):
    address = web_server if address == "WEB" else address
    started = time.monotonic()
    process = cli("sweep", "lambda", "--values", "0.0002", "--epochs", "1", "--limit", "2000",
                  "--no-committed", "--store", tempfile.mkdtemp(), "--backend", "ray",
                  "--ray-address", address)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2 and time.monotonic() - started < 30
    assert err.count("\n") == 1 and says in err, err


def test_a_cluster_refusing_our_token_exits_2_with_one_line_within_30_s(refused):
    process, started, ended, waiter = refused
    waiter.join(timeout=60)
    assert process.returncode == 2 and ended[0] - started < 30
    err = process.stderr.read()
    assert err.count("\n") == 1 and "refused our authentication token; set RAY_AUTH_TOKEN" in err, err


def test_the_cluster_command_and_the_executor_say_where_training_runs(cluster, monkeypatch):
    process = cli("cluster", "--json", env={RAY_ADDRESS_ENV: cluster.address})
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.strip() == '{"nodes": 2, "cpus": 2}'
    monkeypatch.setenv(RAY_ADDRESS_ENV, cluster.address)
    assert isinstance(executor_for(), RayExecutor)  # the address alone chooses Ray
    assert executor_for("local").where() == "this machine"
    monkeypatch.delenv(RAY_ADDRESS_ENV)
    with pytest.raises(ConfigError, match="needs --backend ray"):
        executor_for("local", "auto")


def test_training_from_the_lambda_page_runs_on_the_cluster_the_page_names(cluster, browser, mnist, tmp_path):
    """In Chromium: a person asks for two missing points, reads where they will train, clicks
    Train, and sees both points arrive; the job ran on the cluster."""

    from playwright.sync_api import expect

    from mnist_core import jobs
    from tests.browser import streamlit_server
    from tests.test_browser import ask_for_tiny_lambda_sweep

    store = tmp_path / "store"
    env = {RAY_ADDRESS_ENV: cluster.address, "MNIST_PATH": mnist.source}
    with streamlit_server(store, tmp_path / "streamlit.log", env=env) as url:
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        ask_for_tiny_lambda_sweep(page, url)
        says = f"Training jobs run on the Ray cluster: 2 nodes, 2 CPUs at {cluster.address}."
        expect(page.get_by_text(says)).to_be_visible()
        page.get_by_role("button", name=re.compile("Train 2 missing")).click()
        expect(page.get_by_text(re.compile(r"2 of 2 runs stored"))).to_be_visible(timeout=150_000)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        page.context.close()
    (job,) = jobs.list_jobs(StoreChain.default(store))
    assert job.status == "done" and job.state["where"] == "Ray cluster: 2 nodes, 2 CPUs"
    assert jobs.job_limits(None) == (jobs.MAX_POINTS, 1) and jobs.job_limits(8) == (4 * jobs.MAX_POINTS, 4)


def test_the_lambda_page_turns_training_off_while_the_cluster_does_not_answer(mnist, tmp_path, monkeypatch):
    import streamlit as st

    from tests.test_pages import open_page

    monkeypatch.setenv(RAY_ADDRESS_ENV, "127.0.0.1:1")
    monkeypatch.setenv("MNIST_PATH", mnist.source)
    monkeypatch.setenv("MNIST_LAB_STORE", str(tmp_path / "store"))
    st.cache_data.clear()
    app = open_page("pages/lambda_sweep.py")
    app.radio(key="lambda_grid_mode").set_value("Explicit values").run()
    app.text_input(key="lambda_values").input("0.0005").run()
    assert any("Training is off: cannot reach the Ray cluster at 127.0.0.1:1" in e.value for e in app.error)
    assert not any("--ray-address" in e.value for e in app.error)  # a visitor has no command line
    assert not [b for b in app.button if b.label.startswith("Train")]
    st.cache_data.clear()


def test_a_node_leaving_mid_sweep_has_its_tasks_run_elsewhere(cluster, mnist, tmp_path):
    leaving = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    configs = width_configs([(10, 5), (25, 10), (40, 20)], [3], epochs=3, limit=6000)
    store = RunStore(tmp_path / "store")
    published = []
    original = store.publish
    store.publish = lambda key, *rest: published.append(key) or original(key, *rest)
    timer = threading.Timer(4.0, cluster.remove_node, args=(leaving,), kwargs={"allow_graceful": False})
    timer.start()
    executor = RayExecutor(cluster.address)
    runs = ensure_runs(configs, mnist, StoreChain(store), progress=False, executor=executor)
    timer.join()
    assert sorted(published) == sorted(r.key for r in runs) and len(runs) == 3
    assert leaving.unique_id not in {r["node"] for r in executor.task_reports}
    # Ray counts a killed node out only once its health checks fail (up to ~15 s by default),
    # which a quick sweep can beat: wait for that, bounded.
    deadline = time.monotonic() + 60
    while executor.cluster() != {"nodes": 2, "cpus": 2} and time.monotonic() < deadline:
        time.sleep(1)
    assert executor.cluster() == {"nodes": 2, "cpus": 2}


def test_a_cluster_without_a_cpu_is_waited_for_saying_so_and_given_up_on(starved):
    process, started, ended, waiter, store = starved
    waiter.join(timeout=90)
    assert process.returncode == 2 and ended[0] - started < 60
    err = process.stderr.read()
    assert "waiting for a CPU: the Ray cluster has no node with a CPU alive for 1 queued task(s)" in err
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(r"python -m mnist_core sweep: error: gave up after [3-9] s: the Ray cluster has no "
                        r"node with a CPU to run 1 training task\(s\); start one with `ray start --address "
                        r"\.\.\.`", last), err
    assert not [p for p in store.glob("*") if not p.name.startswith(".")]


def test_a_cluster_whose_cpus_are_all_taken_is_waited_for_and_given_up_on_saying_why(busy):
    process, started, ended, waiter, store = busy
    waiter.join(timeout=90)
    assert process.returncode == 2 and ended[0] - started < 60  # workers get 15 s to start first
    last = process.stderr.read().strip().splitlines()[-1]
    assert re.fullmatch(r"python -m mnist_core sweep: error: gave up after 1\d s: none of the Ray "
                        r"cluster's 1 CPU\(s\) came free to run 1 training task\(s\); they may be busy "
                        r"with another command, which keeps its workers until it ends", last), last
    assert not [p for p in store.glob("*") if not p.name.startswith(".")]


def test_the_cluster_command_on_a_port_that_is_not_ray_exits_2_with_one_line(web_server):
    started = time.monotonic()
    process = cli("cluster", "--ray-address", web_server)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2 and time.monotonic() - started < 30
    assert err.count("\n") == 1 and "not as a Ray cluster's head does" in err, err


def test_a_grpc_server_that_is_not_ray_is_said_in_one_line_within_seconds(tmp_path):
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))  # gRPC, and no Ray service
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        address = f"127.0.0.1:{port}"
        for command in (["cluster", "--ray-address", address],
                        ["train", "--backend", "ray", "--ray-address", address, "--epochs", "1",
                         "--limit", "100", "--store", str(tmp_path / "store")]):
            started = time.monotonic()
            process = cli(*command)
            _, err = process.communicate(timeout=60)
            assert process.returncode == 2 and time.monotonic() - started < 30, err
            assert err.count("\n") == 1 and "speaks gRPC, but is not a Ray cluster's head" in err, err
            assert "UNIMPLEMENTED" in err
    finally:
        server.stop(0)


def test_a_killed_driver_leaves_no_ray_agents_running_for_more_than_a_minute(tmp_path):
    from mnist_core.ray_reaper import children, cmdline, is_agent

    # No address anywhere, and a Ray temp folder of its own: otherwise Ray would join the module's
    # cluster (found through /tmp/ray/ray_current_cluster) instead of starting an instance here.
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", RAY_ADDRESS_ENV)}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths are limited
    driver = subprocess.Popen([sys.executable, "-m", "mnist_core", "sweep", "lambda", "--values", "0.0002",
                               "--epochs", "3", "--limit", "2000", "--no-committed", "--store",
                               str(tmp_path / "store"), "--backend", "ray", "--quiet"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agents, training, deadline = [], False, time.monotonic() + 120
    while not (len(agents) == 2 and training) and time.monotonic() < deadline and driver.poll() is None:
        started = [pid for child in children(driver.pid) for pid in children(child)]
        agents = [pid for pid in started if is_agent(pid)]
        training = any(cmdline(pid).startswith(b"ray::Trainer") for pid in started)
        time.sleep(0.5)
    assert len(agents) == 2 and training, "the driver should be training on a Ray instance of its own"
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    killed = time.monotonic()
    while any(is_agent(pid) for pid in agents) and time.monotonic() - killed < 60:
        time.sleep(1)
    assert not any(is_agent(pid) for pid in agents), "Ray's agents outlived the killed driver"
