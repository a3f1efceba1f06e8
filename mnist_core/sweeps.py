"""The reference grids, and sweeps over them that reuse every stored run and train the rest."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import ExitStack

import pandas as pd

from .configs import RunConfig
from .data import MNIST
from .store import Run, Stores
from .training import EpochCallback, train

REFERENCE_LAMBDAS = (0.0, 0.001, 0.003, 0.01, 0.05, 0.1, 0.2, 0.3)
REFERENCE_WIDTHS = ((10, 5), (10, 8), (15, 10), (25, 10), (40, 15), (60, 20), (100, 40),
                    (150, 60), (300, 120), (600, 240), (1200, 480))
REFERENCE_SEEDS = (0, 1, 2)
REFERENCE_ACCURACY = {"baseline_mlp": 0.964, "best_lambda_mlp": None, "best_width_mlp": 0.983,
                      "reference_cnn": 0.9919, "improved_cnn": None}
NAMED_CONFIGS = {
    "baseline_mlp": RunConfig(),
    "reference_cnn": RunConfig.for_model("cnn"),
    "improved_cnn": RunConfig.for_model("improved_cnn"),
}
LONG_CNN = RunConfig.for_model("cnn", epochs=30)  # shows where the test loss starts to climb
# 1200/480 costs as much as all other widths together on 2 cores: reproduce trains it for one seed
SINGLE_SEED_WIDTHS = ((1200, 480),)


def lambda_configs(values: Iterable[float] = REFERENCE_LAMBDAS, seeds: Iterable[int] = (0,),
                   epochs: int = 60, limit: int | None = None,
                   hidden: tuple[int, ...] = (25, 15)) -> list[RunConfig]:
    configs = [RunConfig(hidden=hidden, l2=float(v), epochs=epochs, seed=s, limit=limit)
               for v in values for s in seeds]
    return list(dict.fromkeys(configs))  # equal values (0 and -0 too) are one run


def width_configs(pairs: Iterable[tuple[int, ...]] = REFERENCE_WIDTHS, seeds: Iterable[int] = (0,),
                  epochs: int = 60, limit: int | None = None, l2: float = 0.0) -> list[RunConfig]:
    configs = [RunConfig(hidden=tuple(p), l2=l2, epochs=epochs, seed=s, limit=limit)
               for p in pairs for s in seeds]
    return list(dict.fromkeys(configs))


def ensure_runs(configs: list[RunConfig], data: MNIST, stores: Stores, fused: bool = True,
                progress: bool = True, on_epoch: EpochCallback | None = None,
                wait_timeout: float | None = None, on_wait: Callable[[str], None] | None = None) -> list[Run]:
    """Every config's run: found in a store, or trained once (under a lock) and published.

    While another process trains one of them, waits for it, saying so through `on_wait`
    (else the log), and gives up with StoreError after `wait_timeout` seconds.
    """
    keys = [c.key(data.fingerprint) for c in configs]
    runs = {k: stores.get(k) for k in keys}
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
            for trained in _train(list(todo.values()), data, store, fused, progress, on_epoch):
                runs[trained.key] = trained
    return [runs[k] for k in keys]


def _train(configs, data, store, fused, progress, on_epoch):
    if fused:
        from .fused import train_fused

        groups: dict[tuple, list[RunConfig]] = {}
        for c in configs:
            if c.model == "mlp":
                groups.setdefault((c.epochs, c.batch_size, c.learning_rate, c.limit), []).append(c)
        for group in groups.values():
            yield from train_fused(group, data, store, progress, on_epoch)
        configs = [c for c in configs if c.model != "mlp"]
    for config in configs:
        yield train(config, data, store, progress, on_epoch)


def run_row(run: Run) -> dict:
    c = run.config
    return {
        "model": c.model,
        "hidden": "-".join(map(str, c.hidden)),
        "hidden1": c.hidden[0] if c.hidden else None,
        "hidden2": c.hidden[1] if len(c.hidden) > 1 else None,
        "neurons": sum(c.hidden),
        "l2": c.l2,
        "epochs": c.epochs,
        "seed": c.seed,
        "limit": c.limit,
        "train_accuracy": run.metrics["train_accuracy"],
        "test_accuracy": run.metrics["test_accuracy"],
        "train_error": run.metrics["train_error"],
        "test_error": run.metrics["test_error"],
        "train_loss": run.metrics["train_loss"],
        "test_loss": run.metrics["test_loss"],
        "wall_time_s": run.metrics["wall_time_s"],
        "key": run.key,
    }


TABLE_COLUMNS = ("model", "hidden", "hidden1", "hidden2", "neurons", "l2", "epochs", "seed", "limit",
                 "train_accuracy", "test_accuracy", "train_error", "test_error", "train_loss",
                 "test_loss", "wall_time_s", "key")


def table(runs: Iterable[Run | None]) -> pd.DataFrame:
    """One tidy row per run (missing runs skipped)."""
    return pd.DataFrame([run_row(r) for r in runs if r is not None], columns=list(TABLE_COLUMNS))


def stored(configs: list[RunConfig], stores: Stores, fingerprint: str) -> list[Run | None]:
    """The stored run of each config, or None: no data and no TensorFlow needed."""
    return [stores.get(c.key(fingerprint)) for c in configs]


def lambda_sweep(values: Iterable[float] = REFERENCE_LAMBDAS, seeds: Iterable[int] = (0,),
                 epochs: int = 60, limit: int | None = None, *, data: MNIST, stores: Stores,
                 fused: bool = True, progress: bool = True,
                 wait_timeout: float | None = None) -> pd.DataFrame:
    configs = lambda_configs(values, seeds, epochs, limit)
    return table(ensure_runs(configs, data, stores, fused, progress, wait_timeout=wait_timeout))


def width_sweep(pairs: Iterable[tuple[int, ...]] = REFERENCE_WIDTHS, seeds: Iterable[int] = (0,),
                epochs: int = 60, limit: int | None = None, *, data: MNIST, stores: Stores,
                fused: bool = True, progress: bool = True,
                wait_timeout: float | None = None) -> pd.DataFrame:
    configs = width_configs(pairs, seeds, epochs, limit)
    return table(ensure_runs(configs, data, stores, fused, progress, wait_timeout=wait_timeout))


def best_width_config(stores: Stores, fingerprint: str) -> RunConfig | None:
    """Seed 0 of the reference width pair with the best mean test accuracy over its seeds."""
    runs = [r for r in stored(width_configs(seeds=REFERENCE_SEEDS), stores, fingerprint) if r]
    if not runs:
        return None
    frame = table(runs)
    best = frame.groupby("hidden")["test_accuracy"].mean().idxmax()
    hidden = tuple(int(w) for w in best.split("-"))
    return RunConfig(hidden=hidden)


def named_runs(stores: Stores, fingerprint: str) -> dict[str, Run]:
    """The named runs that are stored: baseline_mlp, best_width_mlp, reference_cnn, improved_cnn."""
    configs = dict(NAMED_CONFIGS)
    best = best_width_config(stores, fingerprint)
    if best is not None:
        configs = {"baseline_mlp": configs["baseline_mlp"], "best_width_mlp": best,
                   **{k: v for k, v in configs.items() if k != "baseline_mlp"}}
    found = {name: stores.get(c.key(fingerprint)) for name, c in configs.items()}
    return {name: run for name, run in found.items() if run is not None}


def reproduce_steps(seeds: Iterable[int] = REFERENCE_SEEDS,
                    improved_seeds: Iterable[int] = (0,)) -> list[tuple[str, list[RunConfig]]]:
    """Every reference experiment, in chunks small enough that an interruption loses little."""
    seeds = tuple(seeds)
    first, *others = seeds
    steps = [("lambda sweep (includes the baseline MLP)", lambda_configs(REFERENCE_LAMBDAS, seeds)),
             (f"width sweep, seed {first}", width_configs(seeds=(first,))),
             ("reference CNN", [RunConfig.for_model("cnn", seed=s) for s in seeds]),
             ("reference CNN, long run", [LONG_CNN])]
    narrower = [pair for pair in REFERENCE_WIDTHS if pair not in SINGLE_SEED_WIDTHS]
    steps += [(f"width sweep, seed {s} (all but the widest)", width_configs(narrower, seeds=(s,)))
              for s in others]
    steps += [("improved CNN", [RunConfig.for_model("improved_cnn", seed=s) for s in improved_seeds])]
    return steps
