"""Where training runs: what an executor does, and the local one (this process).

An executor trains the configs `ensure_runs` hands it and publishes each finished run into
the store; `ensure_runs` decides what is missing and holds the per-key locks around it. The
Ray backend (ray_backend.py) builds on this module; backends.py chooses between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from .configs import RunConfig, group_key
from .data import MNIST
from .store import Run, RunStore

if TYPE_CHECKING:
    from .training import EpochCallback

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
    """This process: MLPs of a sweep fused into one graph per group, other models one fit each.
    `graphs` (a fused.CompiledGraphs), if given, keeps fused graphs for later calls."""

    def __init__(self, graphs=None):
        self.graphs = graphs

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
                yield from train_fused(group, data, store, progress, on_epoch, self.graphs)
            configs = [c for c in configs if c.model != "mlp"]
        for config in configs:
            yield train(config, data, store, progress, on_epoch)

    def where(self) -> str:
        return "this machine"

    def summary(self) -> str | None:
        return None


def cluster_words(info: dict) -> str:
    nodes, cpus = info["nodes"], info["cpus"]
    return f"Ray cluster: {nodes} node{'s' * (nodes != 1)}, {cpus} CPU{'s' * (cpus != 1)}"
