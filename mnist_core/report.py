"""The results table (reference vs ours, mean ± std over seeds) and the sweep curve images."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pandas as pd

from .catalog import (
    LONG_CNN,
    REFERENCE_ACCURACY,
    REFERENCE_LAMBDAS,
    REFERENCE_SEEDS,
    REFERENCE_WIDTHS,
    best_point,
    lambda_configs,
    runs_table,
    seed_spread,
    stored_runs,
    width_configs,
)
from .configs import DEFAULT_PRECISION, PRECISIONS, RunConfig
from .safe_write import replacing
from .store import COMMITTED_STORE, Run, StoreChain, StoreError

FIGURES = COMMITTED_STORE / "figures"


def ensemble_accuracy(runs: list[Run], test_labels: np.ndarray) -> float:
    """Test accuracy of the runs' averaged test-set probabilities."""
    probabilities = np.mean([run.predictions().astype(np.float32) for run in runs], axis=0)
    return float(np.mean(probabilities.argmax(axis=1) == test_labels))


def results(stores: StoreChain, fingerprint: str, test_labels: np.ndarray | None = None) -> pd.DataFrame:
    """One row per reference experiment: reference figure, ours, and the command behind it.

    With the test labels, the improved CNN's seeds are also scored as one ensemble.
    """
    def table_of(configs):
        return runs_table(stored_runs(configs, stores, fingerprint))

    lambdas = table_of(lambda_configs(REFERENCE_LAMBDAS, REFERENCE_SEEDS))
    widths = table_of(width_configs(REFERENCE_WIDTHS, REFERENCE_SEEDS))
    cnn = table_of([RunConfig.for_model("cnn", seed=s) for s in REFERENCE_SEEDS])
    long_cnn = table_of([LONG_CNN])
    rows = []
    baseline = lambdas[lambdas["l2"] == 0]["test_accuracy"] if not lambdas.empty else pd.Series(dtype=float)
    rows.append(("Baseline MLP 25-15, 60 epochs", REFERENCE_ACCURACY["baseline_mlp"], seed_spread(baseline),
                 "python -m mnist_core sweep lambda --values 0 --seeds 0,1,2"))
    if not lambdas.empty:
        best, accuracies = best_point(lambdas, "l2")
        rows.append((f"Best lambda point (λ = {best:g})", None, seed_spread(accuracies),
                     "python -m mnist_core sweep lambda --seeds 0,1,2"))
    if not widths.empty:
        best, accuracies = best_point(widths, "hidden")
        rows.append((f"Best width ({best})", REFERENCE_ACCURACY["best_width_mlp"],
                     seed_spread(accuracies), "python -m mnist_core sweep width --seeds 0,1,2"))
    rows.append(("Reference CNN, 10 epochs", REFERENCE_ACCURACY["reference_cnn"],
                 seed_spread(cnn["test_accuracy"]), "python -m mnist_core train --model cnn --seed S"))
    if not long_cnn.empty:
        rows.append((f"Reference CNN, {LONG_CNN.epochs} epochs", None, seed_spread(long_cnn["test_accuracy"]),
                     f"python -m mnist_core train --model cnn --epochs {LONG_CNN.epochs}"))
    for precision in PRECISIONS:  # the default (float32), then bfloat16 if any run of it is stored
        configs = [RunConfig.for_model("improved_cnn", seed=s, precision=precision) for s in range(5)]
        runs = [run for run in stored_runs(configs, stores, fingerprint) if run]
        default = precision == DEFAULT_PRECISION["improved_cnn"]
        if not runs and not default:
            continue
        option = "" if default else f" --precision {precision}"
        rows.append((f"Improved CNN (ours), 20 epochs, trained in {precision}", None,
                     seed_spread(runs_table(runs)["test_accuracy"]),
                     f"python -m mnist_core train --model improved_cnn{option} --seed S"))
        if test_labels is not None and len(runs) > 1:
            seeds = ",".join(str(run.config.seed) for run in runs)
            rows.append((f"Improved CNN ensemble (ours, {precision}), seeds {seeds}, averaged "
                         "probabilities", None, f"{ensemble_accuracy(runs, test_labels):.2%}",
                         "python -m mnist_core report"))
    return pd.DataFrame(rows, columns=["experiment", "reference", "ours (mean ± std)", "command"])


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| experiment | reference | ours (test accuracy, mean ± std) | command |",
             "| --- | --- | --- | --- |"]
    for row in frame.itertuples(index=False):
        known = isinstance(row.reference, float) and not pd.isna(row.reference)
        reference = f"{row.reference:.2%}" if known else "—"
        lines.append(f"| {row.experiment} | {reference} | {row[2]} | `{row.command}` |")
    return "\n".join(lines)


def plot_sweeps(stores: StoreChain, fingerprint: str, folder: Path = FIGURES) -> list[Path]:
    """PNG images of train/test error vs lambda and vs width (mean and min-max over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    sweeps = [
        ("lambda_sweep.png", lambda_configs(REFERENCE_LAMBDAS, REFERENCE_SEEDS), "l2",
         "L2 lambda (symlog; 0 at the left)"),
        ("width_sweep.png", width_configs(REFERENCE_WIDTHS, REFERENCE_SEEDS), "neurons",
         "total hidden neurons (log)"),
    ]
    for name, configs, by, label in sweeps:
        frame = runs_table(stored_runs(configs, stores, fingerprint))
        if frame.empty:
            continue
        figure, axis = plt.subplots(figsize=(7, 4.2), dpi=110)
        for metric, color in (("train_error", "tab:blue"), ("test_error", "tab:red")):
            stats = frame.groupby(by)[metric].agg(["mean", "min", "max"]).sort_index()
            axis.plot(stats.index, stats["mean"], "o-", color=color, label=metric.replace("_", " "))
            axis.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.15)
        if by == "l2":
            axis.set_xscale("symlog", linthresh=1e-3)
        else:
            axis.set_xscale("log")
        seeds = frame.groupby(by).size().min()
        axis.set(xlabel=label, ylabel="error (1 − accuracy)",
                 title=f"{'L2' if by == 'l2' else 'Width'} sweep, 60 epochs, ≥{seeds} seed(s) per point")
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        try:  # through the one writer: a full disk leaves the old figure whole
            with replacing(folder / name, 0o644) as out:
                figure.savefig(out, format="png")
        except OSError as exc:
            what = "free some space" if exc.errno == errno.ENOSPC else "check that folder"
            raise StoreError(f"cannot write {folder / name} ({exc.strerror or exc}); the old figure, "
                             f"if any, is kept whole: {what}, or pass --no-figures") from None
        finally:
            plt.close(figure)
        written.append(folder / name)
    return written
