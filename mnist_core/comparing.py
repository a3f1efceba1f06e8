"""Runs side by side: one row per run for the Runs page, each run's accuracy per digit, and what
differs between the configs of runs compared. Needs neither MNIST nor TensorFlow."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .catalog import run_row
from .configs import RunConfig
from .store import Run
from .suspects import given_labels, predicted_labels

MAX_COMPARED = 6
RUN_COLUMNS = ("model", "hidden", "hidden1", "hidden2", "l2", "epochs", "seed", "limit", "precision",
               "test_accuracy", "test_loss", "wall_time_s", "store", "label", "key")


def runs_frame(runs: Iterable[Run], yours: Path | None = None) -> pd.DataFrame:
    """One row per run: its config, test accuracy and loss, training time, and which store holds
    it ("yours": the writable store at `yours`, else "committed")."""
    rows = []
    for run in runs:
        row = run_row(run)
        rows.append({**{name: row[name] for name in RUN_COLUMNS if name in row},
                     "limit": run.config.limit or 60_000, "precision": run.config.precision,
                     "store": "yours" if yours is not None and run.path.parent == yours else "committed",
                     "label": run.config.label})
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def per_digit_accuracy(run: Run) -> np.ndarray:
    """The run's test accuracy on each digit 0-9 (ValueError when its test labels are unknown)."""
    labels, predicted = given_labels(run), predicted_labels(run)
    return np.array([(predicted[labels == digit] == digit).mean() for digit in range(10)])


def config_differences(configs: list[RunConfig]) -> dict[str, list]:
    """The config fields whose values are not the same in all `configs`: {field: values in order}."""
    fields = [config.to_dict() for config in configs]
    return {name: [f[name] for f in fields] for name in (fields[0] if fields else {})
            if len({repr(f[name]) for f in fields}) > 1}
