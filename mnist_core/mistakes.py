"""What a run gets wrong: confusion matrix, sorted misclassifications, and two runs compared.

Works from a run's stored errors.npz (Run.errors()) alone, so it needs neither MNIST nor TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import TEST_LABEL_COUNTS

# Runs store probabilities as float16: below half its smallest step (3e-8) one is kept as 0,
# so its loss is known only to exceed this. Such mistakes are "beyond" (loss inf in the table).
LOSS_BEYOND = float(-np.log(float(np.finfo(np.float16).smallest_subnormal) / 2))


def error_table(errors: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per misclassified test image (from Run.errors()): index, true, predicted,
    confidence, loss (inf where the stored probability of the true digit is 0: over LOSS_BEYOND)."""
    true_probability = np.clip(errors["true_probability"].astype(np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        loss = -np.log(true_probability)
    return pd.DataFrame({
        "index": errors["index"].astype(int),
        "true": errors["true"].astype(int),
        "predicted": errors["predicted"].astype(int),
        "confidence": errors["confidence"].astype(float),
        "loss": loss,
    })


def images_by_index(errors: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """The misclassified images (from Run.errors()) by test index."""
    return dict(zip(errors["index"].astype(int).tolist(), errors["image"]))


def confusion(table: pd.DataFrame) -> np.ndarray:
    """10x10 counts, rows true and columns predicted, on the standard 10,000-image test set,
    from a run's error_table."""
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (table["true"].to_numpy(), table["predicted"].to_numpy()), 1)
    for digit in range(10):
        matrix[digit, digit] = TEST_LABEL_COUNTS[digit] - matrix[digit].sum()
    return matrix


def sort_errors(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Most confident (or highest loss) mistakes first."""
    if by not in ("confidence", "loss"):
        raise ValueError(f"sort by must be 'confidence' or 'loss', got {by!r}")
    then = "confidence" if by == "loss" else "loss"  # losses beyond what is stored: the surest first
    return table.sort_values([by, then, "index"], ascending=[False, False, True], kind="stable")


def compare(table_a: pd.DataFrame, table_b: pd.DataFrame) -> dict[str, np.ndarray]:
    """Test indices that only run A gets wrong, only B, and both, from their error_tables."""
    wrong_a = set(table_a["index"].tolist())
    wrong_b = set(table_b["index"].tolist())
    return {"only A": np.array(sorted(wrong_a - wrong_b), dtype=int),
            "only B": np.array(sorted(wrong_b - wrong_a), dtype=int),
            "both": np.array(sorted(wrong_a & wrong_b), dtype=int)}
