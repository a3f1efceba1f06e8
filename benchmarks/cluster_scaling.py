"""Ray scale-out on this machine, measured side by side, then projected to bigger clusters.

    python benchmarks/cluster_scaling.py [--epochs 2]

Measured: the reference width sweep (11 MLPs from 10/5 to 1200/480, full 60,000 images,
`--epochs` epochs) trained into empty stores (a) by the local backend in a fresh process with
TensorFlow on 1 thread and on 2 threads (the default here), (b) on a Ray cluster of 1 node
with 1 CPU, (c) on 2 nodes of 1 CPU each (Ray's `cluster_utils.Cluster`, all on this machine,
token auth on). Every side trains a tiny warm-up sweep first (workers started, TensorFlow
imported and initialised), as a second sweep on a running cluster would. Printed: wall
seconds, throughput ratio 2 nodes / 1 node, and Ray's overhead per task: the 1-node Ray sweep
(one task) against the local backend doing the same work on one thread.

Also printed: each 2-node task's estimated and measured seconds, and when each node finished
(the work queue aims to finish them within 5% of each other), and the own cost of a task that
trains almost nothing on a warm worker, with a layout new to it and with one whose compiled
graphs it kept from an earlier task.

Projected: the whole study with 10 seeds (every lambda and width point, the reference CNN and
the improved CNN at 10 seeds, the long CNN once) on 8, 32 and 128 one-CPU workers. MLP runs:
the planner's cost estimates scaled by measured / estimated seconds of this run's 2-node
tasks. CNN runs: the times recorded in cached_results/ (this machine, 2 cores; the fastest
seed, the others having shared the machine), scaled to one CPU by the 1-thread / 2-thread
ratio of that CNN's second epoch (on 12,000 and 6,000 images; the faster of two runs each)
measured here. Plus the measured Ray
overhead when positive; tasks as `plan_tasks` makes them, handed out costliest first to the
earliest free worker (`makespan`), as the Ray backend's work queue does.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_AUTH_MODE", "token")  # before Ray is imported: it reads these once
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))

from mnist_core.catalog import (  # noqa: E402
    LONG_CNN,
    REFERENCE_LAMBDAS,
    REFERENCE_WIDTHS,
    lambda_configs,
    width_configs,
)
from mnist_core.configs import RunConfig  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402
from mnist_core.store import COMMITTED_STORE, RunStore, StoreChain  # noqa: E402
from mnist_core.sweeps import ensure_runs  # noqa: E402

WORKERS = (8, 32, 128)


def sweep(epochs: int) -> list[RunConfig]:
    return width_configs(REFERENCE_WIDTHS, [0], epochs)


def warm_up_configs(tasks: int) -> list[RunConfig]:
    """A tiny sweep of `tasks` tasks of two models each (one per worker)."""
    return lambda_configs([0.5, 0.6, 0.7, 0.8][: 2 * tasks], [99], 1, 2000)


# Images per epoch when timing a CNN's epoch on 1 and 2 threads (what scales its recorded times).
CNN_IMAGES = {"cnn": 12_000, "improved_cnn": 6_000}


def local_child(kind: str, epochs: int, threads: int) -> None:
    """In a fresh process: the local backend on `threads` threads, the sweep or (`kind` a CNN)
    two epochs of that CNN; prints {"seconds": ..., "epoch": the last epoch's seconds}."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    data = load_mnist()
    cnn = kind != "sweep"
    configs = [RunConfig.for_model(kind, epochs=2, limit=CNN_IMAGES[kind])] if cnn else sweep(epochs)
    ends = []
    with tempfile.TemporaryDirectory() as warm, tempfile.TemporaryDirectory() as folder:
        ensure_runs(warm_up_configs(1), data, StoreChain(RunStore(warm)), progress=False)
        started = time.perf_counter()
        ensure_runs(configs, data, StoreChain(RunStore(folder)), progress=False,
                    on_epoch=lambda done, logs: ends.append(time.perf_counter()))
        print(json.dumps({"seconds": time.perf_counter() - started, "epoch": ends[-1] - ends[-2]}))


def local_seconds(kind: str, epochs: int, threads: int, part: str = "seconds") -> float:
    """Wall seconds of the whole request, or ("epoch") of its last epoch."""
    command = [sys.executable, __file__, "--local-child", kind, str(threads), "--epochs", str(epochs)]
    answer = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(answer.stdout.strip().splitlines()[-1])[part]


def two_at_once(epochs: int) -> list[float]:
    """Wall seconds of two local-backend sweeps on 1 thread each, run at the same time."""
    command = [sys.executable, __file__, "--local-child", "sweep", "1", "--epochs", str(epochs)]
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    return [json.loads(child.communicate()[0].strip().splitlines()[-1])["seconds"] for child in children]


def ray_seconds(executor, data, epochs: int) -> tuple[float, list[dict]]:
    """Wall seconds of the sweep on the cluster, and its task reports ("arrived": seconds after
    the start at which the driver had the task's result)."""
    executor.task_reports.clear()
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        ensure_runs(sweep(epochs), data, StoreChain(RunStore(folder)), progress=False, executor=executor)
        seconds = time.monotonic() - started
    return seconds, [{**r, "arrived": r["arrived"] - started} for r in executor.task_reports]


def warm_up(executor, data, workers: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        ensure_runs(warm_up_configs(workers), data, StoreChain(RunStore(folder)), progress=False,
                    executor=executor)


def task_fixed_cost(executor, data) -> list[float]:
    """Seconds inside a warm worker of a task that trains almost nothing (two 31-17 MLPs, a shape
    the sweep does not have, one epoch of 2,000 images, then scored and saved): first with its
    layout new to the worker, then again with other seeds, in the graphs the worker kept."""
    seconds = []
    for seed in (97, 98):
        configs = lambda_configs([0.5, 0.6], [seed], 1, 2000, hidden=(31, 17))
        with tempfile.TemporaryDirectory() as folder:
            ensure_runs(configs, data, StoreChain(RunStore(folder)), progress=False, executor=executor)
        seconds.append(executor.task_reports[-1]["seconds"])
    return seconds


def recorded_cnn_seconds() -> dict[RunConfig, float]:
    """Seconds per CNN run recorded in cached_results/, by config without its seed (the fastest)."""
    seconds: dict[RunConfig, list[float]] = defaultdict(list)
    for run in StoreChain(RunStore(COMMITTED_STORE, read_only=True)).runs():
        if run.config.model != "mlp":
            seconds[_unseeded(run.config)].append(run.metrics["wall_time_s"])
    return {config: min(values) for config, values in seconds.items()}


def _unseeded(config: RunConfig) -> RunConfig:
    return RunConfig.from_dict({**config.to_dict(), "seed": 0})


def whole_study(seeds: int = 10) -> list[RunConfig]:
    every = range(seeds)
    return [*lambda_configs(REFERENCE_LAMBDAS, every), *width_configs(REFERENCE_WIDTHS, every),
            *(RunConfig.for_model("cnn", seed=s) for s in every), LONG_CNN,
            *(RunConfig.for_model("improved_cnn", seed=s) for s in every)]


def describe(task: list[RunConfig]) -> str:
    """A task in a few words: its runs counted by config, seeds left out."""
    counts = defaultdict(int)
    for config in task:
        counts[config.label.rsplit(", seed", 1)[0]] += 1
    shown = sorted(counts.items(), key=lambda item: -item[1])
    words = ", ".join(f"{n} x {label}" for label, n in shown[:3])
    return words + (f" and {len(shown) - 3} more configs" if len(shown) > 3 else "")


def projection(mlp_factor: float, cnn_factors: dict[str, float], overhead: float) -> list[str]:
    from mnist_core.planning import cost, makespan, plan_tasks

    cnn_seconds = recorded_cnn_seconds()
    study = whole_study()

    def seconds(task: list[RunConfig]) -> float:
        """A task's MLPs as one estimate (a task's own part and each stack's compile counted
        once), its CNN runs as recorded, scaled to one thread."""
        mlps = [config for config in task if config.model == "mlp"]
        cnns = sum(cnn_seconds[_unseeded(config)] * cnn_factors[config.model]
                   for config in task if config.model != "mlp")
        return ((cost(mlps) * mlp_factor if mlps else 0.0) + cnns) * (1 + overhead)

    lines = [f"projected: the whole study with 10 seeds, {len(study)} runs, on one-CPU workers "
             f"(MLPs: estimated cost x {mlp_factor:.2f}, as measured above; CNNs: recorded times "
             f"x {cnn_factors['cnn']:.2f} and x {cnn_factors['improved_cnn']:.2f}; x {1 + overhead:.3f} "
             "Ray overhead)",
             f"  1 worker: {sum(map(seconds, plan_tasks(study, 1))) / 3600:.1f} h"]
    for workers in WORKERS:
        tasks = plan_tasks(study, workers)
        times = list(map(seconds, tasks))
        longest = max(range(len(tasks)), key=lambda i: times[i])
        finish = max(makespan(times, workers))
        lines.append(f"  {workers} workers: {finish / 60:.0f} min ({len(tasks)} tasks, "
                     f"ideal {sum(times) / workers / 60:.0f} min); the largest task: "
                     f"{describe(tasks[longest])}, {times[longest] / 60:.0f} min")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--local-child", nargs=2, metavar=("KIND", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.local_child:
        return local_child(args.local_child[0], args.epochs, int(args.local_child[1]))

    import ray
    from ray.cluster_utils import Cluster

    from mnist_core.ray_backend import RayExecutor

    data = load_mnist()
    print(f"sweep: the {len(sweep(args.epochs))}-point width sweep, {args.epochs} epochs, 60,000 images; "
          f"{os.cpu_count()} cores", flush=True)
    local_1 = local_seconds("sweep", args.epochs, 1)
    local_2 = local_seconds("sweep", args.epochs, 2)
    print(f"local backend, 1 thread:    {local_1:7.1f} s", flush=True)
    print(f"local backend, 2 threads:   {local_2:7.1f} s  (the default here)", flush=True)
    together = two_at_once(args.epochs)
    print(f"local backend, 1 thread, two processes at once: {together[0]:.1f} s and {together[1]:.1f} s "
          f"(what two one-CPU nodes on this machine cost each other: at most "
          f"{2 * local_1 / max(together):.2f}x for two)", flush=True)
    cnn_factors = {}
    for model, images in CNN_IMAGES.items():
        # the faster of two runs each: this machine's second core is at times much slower
        one, two = (min(local_seconds(model, 1, threads, "epoch") for _ in range(2)) for threads in (1, 2))
        cnn_factors[model] = one / two
        print(f"{model}, its second epoch of {images:,} images: {one:.1f} s on 1 thread, {two:.1f} s "
              f"on 2 (x {one / two:.2f})", flush=True)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    executor = RayExecutor(cluster.address, keep_workers=True)
    try:
        warm_up(executor, data, 1)
        new, kept = task_fixed_cost(executor, data)
        print(f"a task's own cost on a warm worker (two small MLPs, 1 epoch of 2,000 images, "
              f"scored and saved): {new:.2f} s with a layout new to it, {kept:.2f} s in the graphs "
              f"it kept from an earlier task of that layout", flush=True)
        one_node, reports_1 = ray_seconds(executor, data, args.epochs)
        print(f"Ray, 1 node x 1 CPU:        {one_node:7.1f} s  ({len(reports_1)} task, "
              f"{reports_1[0]['seconds']:.1f} s inside it)", flush=True)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        warm_up(executor, data, 2)
        two_nodes, reports_2 = ray_seconds(executor, data, args.epochs)
        finished = sorted(max(r["arrived"] for r in reports_2 if r["node"] == node)
                          for node in {r["node"] for r in reports_2})
        print(f"Ray, 2 nodes x 1 CPU:       {two_nodes:7.1f} s  ({len(reports_2)} tasks on "
              f"{len(finished)} nodes; the nodes finished at "
              f"{', '.join(f'{t:.1f} s' for t in finished)})", flush=True)
        for r in sorted(reports_2, key=lambda r: r["task"]):
            print(f"  task {r['task']}: {', '.join(r['runs'])}: estimated {r['estimate']:.1f} s, "
                  f"measured {r['seconds']:.1f} s", flush=True)
        worker_2, worker_1 = sum(r["seconds"] for r in reports_2), reports_1[0]["seconds"]
        print(f"worker time: {worker_2:.1f} s in the 2-node tasks against {worker_1:.1f} s in the "
              f"1-node task (x {worker_2 / worker_1:.2f}); the two local processes at once took "
              f"x {sum(together) / 2 / local_1:.2f} the time of one alone", flush=True)
        mlp_factor = worker_2 / sum(r["estimate"] for r in reports_2)
    finally:
        executor.close()
        ray.shutdown()
        cluster.shutdown()

    overhead = one_node / local_1 - 1
    print()
    for line in projection(mlp_factor, cnn_factors, max(overhead, 0.0)):
        print(line)
    print()
    print(f"throughput_ratio_2_nodes_vs_1={one_node / two_nodes:.2f}")
    print(f"ray_overhead_per_task={overhead:.1%} ({one_node - local_1:+.1f} s)")
    print(f"last_node_after_first={finished[-1] / finished[0] - 1:.1%}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/cluster_scaling.py"))
