"""Get runs: every config's stored run, training (fused where it can) only the missing ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pandas as pd

from .catalog import REFERENCE_LAMBDAS, REFERENCE_WIDTHS, lambda_configs, runs_table, width_configs
from .configs import RunConfig
from .data import MNIST
from .executors import Executor, LocalExecutor
from .store import Run, StoreChain

if TYPE_CHECKING:
    from .training import EpochCallback


def ensure_runs(configs: list[RunConfig], data: MNIST, stores: StoreChain, fused: bool = True,
                progress: bool = True, on_epoch: EpochCallback | None = None,
                wait_timeout: float | None = None, on_wait: Callable[[str], None] | None = None,
                found: dict[str, Run | None] | None = None,
                executor: Executor | None = None) -> list[Run]:
    """Every config's run: found in a store, or trained once (under a lock) and published.

    `executor` trains what is missing (default: this process, see mnist_core.executors).
    `found` ({key: run or None}) saves looking up again what the caller already looked up.
    While another process trains one of them, waits for it, saying so through `on_wait`
    (else the log), and gives up with StoreError after `wait_timeout` seconds.
    """
    keys = [c.key(data.fingerprint) for c in configs]
    runs = {k: (found[k] if found and k in found else stores.get(k)) for k in keys}
    missing = sorted({k for k, run in runs.items() if run is None})
    if missing:
        store = stores.writable
        for key in missing:
            store.check_writable_entry(key)
        labels = {k: c.label for c, k in zip(configs, keys)}
        with ExitStack() as held:
            for key in missing:  # sorted order: two sweeps never wait on each other in a cycle
                held.enter_context(store.lock(key, labels[key], wait_timeout, on_wait))
            todo = {}  # key -> config, each key once
            for config, key in zip(configs, keys):
                if runs[key] is None and key not in todo:
                    runs[key] = stores.get(key)  # another process may have finished it
                    if runs[key] is None:
                        store.clean_staging(key)
                        todo[key] = config
            executor = executor or LocalExecutor()
            for trained in executor.train(list(todo.values()), data, store, fused, progress, on_epoch):
                runs[trained.key] = trained
    return [runs[k] for k in keys]


def lambda_sweep(values: Iterable[float] = REFERENCE_LAMBDAS, seeds: Iterable[int] = (0,),
                 epochs: int = 60, limit: int | None = None, *, data: MNIST, stores: StoreChain,
                 fused: bool = True, progress: bool = True,
                 wait_timeout: float | None = None) -> pd.DataFrame:
    configs = lambda_configs(values, seeds, epochs, limit)
    return runs_table(ensure_runs(configs, data, stores, fused, progress, wait_timeout=wait_timeout))


def width_sweep(pairs: Iterable[tuple[int, ...]] = REFERENCE_WIDTHS, seeds: Iterable[int] = (0,),
                epochs: int = 60, limit: int | None = None, *, data: MNIST, stores: StoreChain,
                fused: bool = True, progress: bool = True,
                wait_timeout: float | None = None) -> pd.DataFrame:
    configs = width_configs(pairs, seeds, epochs, limit)
    return runs_table(ensure_runs(configs, data, stores, fused, progress, wait_timeout=wait_timeout))
