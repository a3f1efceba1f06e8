"""Choosing where training runs: the local backend or a Ray cluster, from a command's flags or
$MNIST_LAB_RAY_ADDRESS; and asking a cluster its size without becoming its driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .configs import ConfigError
from .executors import ClusterError, Executor, LocalExecutor

RAY_ADDRESS_ENV = "MNIST_LAB_RAY_ADDRESS"
BACKENDS = ("local", "ray")


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

    return RayExecutor(address, wait_timeout, keep_workers=True)  # they end with this process


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
