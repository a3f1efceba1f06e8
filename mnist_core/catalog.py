"""What the study is made of, and what is stored of it: the reference grids and named models,
the grid parsers the CLI and the pages share, and tables of stored runs.

Needs neither MNIST nor TensorFlow, so the pages can import it without paying for either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from .configs import MAX_L2, MAX_WIDTH, ConfigError, RunConfig
from .store import Run, StoreChain

REFERENCE_LAMBDAS = (0.0, 0.001, 0.003, 0.01, 0.05, 0.1, 0.2, 0.3)
REFERENCE_WIDTHS = ((10, 5), (10, 8), (15, 10), (25, 10), (40, 15), (60, 20), (100, 40),
                    (150, 60), (300, 120), (600, 240), (1200, 480))
REFERENCE_SEEDS = (0, 1, 2)
# The committed lambda x width grid: is the best lambda the same at every width?
GRID_LAMBDAS = (0.0, 0.001, 0.003, 0.01, 0.03)
GRID_WIDTHS = ((25, 15), (100, 40), (250, 100), (600, 240))
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

if TYPE_CHECKING:
    import pandas as pd


def parse_lambdas(text: str) -> list[float]:
    """λ values from text like "0, 0.001, 1e-2" (commas or semicolons), sorted, each once."""
    values = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"{part!r} is not a number: give lambdas as numbers from 0 to "
                              f"{MAX_L2:g} separated by commas, like 0, 0.001, 0.01") from None
        if not math.isfinite(value) or not 0 <= value <= MAX_L2:
            raise ConfigError(f"{part!r}: lambdas must be numbers from 0 to {MAX_L2:g}, like 0, 0.001, 0.01")
        values.append(value + 0.0)  # -0 is 0
    if not values:
        raise ConfigError(f"no lambdas given: enter numbers from 0 to {MAX_L2:g} separated by commas, like "
                          "0, 0.001, 0.01")
    return sorted(set(values))


def parse_lambda(text: str) -> float:
    """One λ value, by the same rules as parse_lambdas."""
    values = parse_lambdas(text)
    if len(values) != 1 or "," in text:
        raise ConfigError(f"{text!r}: give one lambda, a number >= 0")
    return values[0]


def parse_width_pairs(text: str) -> list[tuple[int, int]]:
    """Hidden-layer width pairs from text like "25:10, 100:40" (commas or semicolons), each once."""
    pairs = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        first, colon, second = (p.strip() for p in part.partition(":"))
        if not (colon and first.isdigit() and second.isdigit()):
            raise ConfigError(f"{part!r} is not a pair: give widths as pairs like 25:10, separated by "
                              "commas")
        pair = (int(first), int(second))
        if not all(1 <= w <= MAX_WIDTH for w in pair):
            raise ConfigError(f"{part!r}: widths must be whole numbers from 1 to {MAX_WIDTH}")
        pairs.append(pair)
    if not pairs:
        raise ConfigError("no widths given: enter pairs like 25:10, separated by commas")
    return list(dict.fromkeys(pairs))


def width_label(hidden: Iterable[int]) -> str:
    """The one notation for hidden widths: "600/240"."""
    return "/".join(str(w) for w in hidden)


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


def grid_configs(values: Iterable[float] = GRID_LAMBDAS, pairs: Iterable[tuple[int, ...]] = GRID_WIDTHS,
                 seeds: Iterable[int] = (0,), epochs: int = 60, limit: int | None = None) -> list[RunConfig]:
    """Every lambda at every width (the product), widths outermost."""
    values = list(values)
    configs = [c for pair in pairs for c in lambda_configs(values, seeds, epochs, limit, hidden=tuple(pair))]
    return list(dict.fromkeys(configs))


def grid_table(frame: pd.DataFrame, column: str = "test_error") -> pd.DataFrame:
    """`column` averaged over seeds, lambdas as rows and widths as columns (in the frame's order)."""
    widths = list(dict.fromkeys(frame["hidden"]))
    return frame.pivot_table(index="l2", columns="hidden", values=column, aggfunc="mean")[widths]


def reproduce_steps(seeds: Iterable[int] = REFERENCE_SEEDS, improved_seeds: Iterable[int] = (0,),
                    pooled: bool = False) -> list[tuple[str, list[RunConfig]]]:
    """Every reference experiment, in chunks small enough that an interruption loses little;
    `pooled`: all in one step, for an executor that trains several tasks at once and publishes
    each run as its task ends (Ray), so that no CPU waits for the end of a chunk."""
    if pooled:
        every = [c for _, step in reproduce_steps(seeds, improved_seeds) for c in step]
        return [("every reference experiment, one pool of tasks", list(dict.fromkeys(every)))]
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


TABLE_COLUMNS = ("model", "hidden", "hidden1", "hidden2", "neurons", "l2", "epochs", "seed", "limit",
                 "param_count", "train_accuracy", "test_accuracy", "train_error", "test_error",
                 "train_loss", "test_loss", "wall_time_s", "trainer", "key")


def run_row(run: Run) -> dict:
    """The one flat description of a run, used by tables, the Overview and `list`."""
    c, m = run.config, run.metrics
    return {
        "model": c.model,
        "hidden": width_label(c.hidden),
        "hidden1": c.hidden[0] if c.hidden else None,
        "hidden2": c.hidden[1] if len(c.hidden) > 1 else None,
        "neurons": sum(c.hidden),
        "l2": c.l2,
        "epochs": c.epochs,
        "seed": c.seed,
        "limit": c.limit,
        **{name: m[name] for name in ("param_count", "train_accuracy", "test_accuracy", "train_error",
                                      "test_error", "train_loss", "test_loss", "wall_time_s", "trainer")},
        "key": run.key,
    }


def runs_table(runs: Iterable[Run | None]) -> pd.DataFrame:
    """One tidy row per run (missing runs skipped)."""
    import pandas as pd  # here: reading a drawing needs no pandas (0.4 s to import)

    return pd.DataFrame([run_row(r) for r in runs if r is not None], columns=list(TABLE_COLUMNS))


def stored_runs(configs: list[RunConfig], stores: StoreChain, fingerprint: str) -> list[Run | None]:
    """The stored run of each config, or None: no data and no TensorFlow needed."""
    return [stores.get(c.key(fingerprint)) for c in configs]


def seed_spread(accuracies: Iterable[float]) -> str:
    """"96.24% ± 0.03% (3 seeds)": mean and population std over seeds, the study's one notation."""
    import pandas as pd  # here: reading a drawing needs no pandas (0.4 s to import)

    values = pd.Series(list(accuracies), dtype=float)
    if values.empty:
        return "not stored"
    if len(values) == 1:
        return f"{values.iloc[0]:.2%} (1 seed)"
    return f"{values.mean():.2%} ± {values.std(ddof=0):.2%} ({len(values)} seeds)"


def best_point(frame: pd.DataFrame, by: str):
    """The value of column `by` whose runs have the best mean test accuracy, and those runs'
    test accuracies."""
    best = frame.groupby(by)["test_accuracy"].mean().idxmax()
    return best, frame.loc[frame[by] == best, "test_accuracy"]


def best_width_config(stores: StoreChain, fingerprint: str) -> RunConfig | None:
    """Seed 0 of the reference width pair with the best mean test accuracy over its seeds."""
    accuracies: dict[tuple[int, ...], list[float]] = {}  # plain Python: no pandas to read a drawing
    for run in stored_runs(width_configs(seeds=REFERENCE_SEEDS), stores, fingerprint):
        if run is not None:
            accuracies.setdefault(run.config.hidden, []).append(run.test_accuracy)
    if not accuracies:
        return None
    # as best_point does: the best mean, the first of equal ones in the order of the width labels
    by_label = sorted(accuracies, key=width_label)
    return RunConfig(hidden=max(by_label, key=lambda hidden: np.mean(accuracies[hidden])))


def named_runs(stores: StoreChain, fingerprint: str) -> dict[str, Run]:
    """The named runs that are stored: baseline_mlp, best_width_mlp, reference_cnn, improved_cnn."""
    configs = dict(NAMED_CONFIGS)
    best = best_width_config(stores, fingerprint)
    if best is not None:
        configs = {"baseline_mlp": configs["baseline_mlp"], "best_width_mlp": best,
                   **{k: v for k, v in configs.items() if k != "baseline_mlp"}}
    found = {name: stores.get(c.key(fingerprint)) for name, c in configs.items()}
    return {name: run for name, run in found.items() if run is not None}
