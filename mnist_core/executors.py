"""Where training runs: in this process (the default) or on a Ray cluster.

An executor trains the configs `ensure_runs` hands it and publishes each finished run into
the store; `ensure_runs` decides what is missing and holds the per-key locks around it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


def executor_for(backend: str | None = None, address: str | None = None) -> Executor:
    """The executor for `backend` ("local" or "ray"; default: "ray" if $MNIST_LAB_RAY_ADDRESS is
    set, else "local"). Ray joins `address` (or $MNIST_LAB_RAY_ADDRESS): "auto", "host:port",
    or none to start a Ray instance on this machine."""
    address = address or os.environ.get(RAY_ADDRESS_ENV) or None
    backend = backend or ("ray" if os.environ.get(RAY_ADDRESS_ENV) else "local")
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "local":
        if address and not os.environ.get(RAY_ADDRESS_ENV):
            raise ConfigError("--ray-address needs --backend ray")
        return LocalExecutor()
    from .ray_backend import RayExecutor

    return RayExecutor(address)
