"""Where training runs: in this process (the default) or on a Ray cluster.

An executor trains the configs `ensure_runs` hands it and publishes each finished run into
the store; `ensure_runs` decides what is missing and holds the per-key locks around it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .configs import ConfigError, RunConfig, group_key
from .data import MNIST
from .store import Run, RunStore

if TYPE_CHECKING:
    from .training import EpochCallback

RAY_ADDRESS_ENV = "MNIST_LAB_RAY_ADDRESS"
BACKENDS = ("local", "ray")


class ClusterError(RuntimeError):
    """The Ray cluster cannot be reached, refuses us, or a training task failed there."""


class Executor(Protocol):
    def train(self, configs: list[RunConfig], data: MNIST, store: RunStore, fused: bool,
              progress: bool, on_epoch: EpochCallback | None) -> Iterator[Run]:
        """Train `configs` (each once), publish each into `store`, yield each run as it is stored."""

    def where(self) -> str:
        """Where the training runs, for people: "this machine", "Ray cluster: 2 nodes, 2 CPUs"."""

    def summary(self) -> str | None:
        """After training: what took part and how long it took (None when there is nothing to add)."""


class LocalExecutor:
    """This process: MLPs of a sweep fused into one graph per group, other models one fit each."""

    def train(self, configs, data, store, fused=True, progress=True, on_epoch=None) -> Iterator[Run]:
        # TensorFlow (~5 s to import) only once something is to be trained: a request whose runs
        # are all stored, or that fails on its arguments or its store, never pays for it.
        from .fused import train_fused
        from .training import train

        if fused:
            groups: dict[tuple, list[RunConfig]] = {}
            for c in configs:
                if c.model == "mlp":
                    groups.setdefault(group_key(c), []).append(c)
            for group in groups.values():
                yield from train_fused(group, data, store, progress, on_epoch)
            configs = [c for c in configs if c.model != "mlp"]
        for config in configs:
            yield train(config, data, store, progress, on_epoch)

    def where(self) -> str:
        return "this machine"

    def summary(self) -> str | None:
        return None


def executor_for(backend: str | None = None, address: str | None = None,
                 wait_timeout: float | None = None) -> Executor:
    """The executor for `backend` ("local" or "ray"; default: "ray" if $MNIST_LAB_RAY_ADDRESS is
    set, else "local"). Ray joins `address` (or $MNIST_LAB_RAY_ADDRESS): "auto", "host:port",
    or none to start a Ray instance on this machine; it gives up after `wait_timeout` seconds
    without a CPU in the cluster."""
    address = address or os.environ.get(RAY_ADDRESS_ENV) or None
    backend = backend or ("ray" if os.environ.get(RAY_ADDRESS_ENV) else "local")
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "local":
        if address and not os.environ.get(RAY_ADDRESS_ENV):
            raise ConfigError("--ray-address needs --backend ray")
        return LocalExecutor()
    from .ray_backend import RayExecutor

    return RayExecutor(address, wait_timeout)


def cluster_words(info: dict) -> str:
    nodes, cpus = info["nodes"], info["cpus"]
    return f"Ray cluster: {nodes} node{'s' * (nodes != 1)}, {cpus} CPU{'s' * (cpus != 1)}"


def ray_cluster_info(address: str, timeout: float = 40) -> dict:
    """{"nodes": n, "cpus": c} of the Ray cluster at `address`, asked by a child process (the
    dashboard's server must not become a Ray driver itself). ClusterError says why not."""
    try:
        answer = subprocess.run([sys.executable, "-m", "mnist_core", "cluster", "--json",
                                 "--ray-address", address], capture_output=True, text=True,
                                timeout=timeout, cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"the Ray cluster at {address} did not answer in {timeout:.0f} s") from None
    if answer.returncode != 0:
        said = answer.stderr.strip().splitlines()
        reason = said[-1].split("error: ", 1)[-1] if said else f"exit status {answer.returncode}"
        raise ClusterError(reason)
    try:
        info = json.loads(answer.stdout)
        info = {"nodes": int(info["nodes"]), "cpus": int(info["cpus"])}
    except (ValueError, KeyError, TypeError):
        raise ClusterError(f"unexpected answer about the Ray cluster at {address}") from None
    return info
