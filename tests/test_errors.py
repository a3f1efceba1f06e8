"""The error analysis on committed runs (no MNIST or TensorFlow needed)."""

import numpy as np
import pytest

from mnist_core.catalog import named_runs
from mnist_core.data import STANDARD_FINGERPRINT, TEST_LABEL_COUNTS
from mnist_core.mistakes import LOSS_BEYOND, compare, confusion, error_table, images_by_index, sort_errors
from mnist_core.store import StoreChain
from pages.parts import charts


@pytest.fixture(scope="module")
def runs():
    named = named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT)
    return named["reference_cnn"], named["baseline_mlp"]


def test_confusion_rows_count_every_test_image(runs):
    cnn, _ = runs
    table = error_table(cnn.errors())
    matrix = confusion(table)
    assert matrix.sum(axis=1).tolist() == [TEST_LABEL_COUNTS[d] for d in range(10)]
    assert matrix.sum() - np.trace(matrix) == len(table)
    assert 1 - len(table) / 10_000 == pytest.approx(cnn.test_accuracy)


def test_table_and_images_describe_the_same_mistakes(runs):
    cnn, _ = runs
    table, images = error_table(cnn.errors()), images_by_index(cnn.errors())
    assert set(images) == set(table["index"])
    assert all(image.shape == (28, 28) for image in images.values())
    assert (table["true"] != table["predicted"]).all()
    assert table["confidence"].between(0, 1).all() and (table["loss"] >= 0).all()


def test_sorting_puts_the_most_confident_or_costly_mistakes_first(runs):
    table = error_table(runs[1].errors())
    for by in ("confidence", "loss"):
        assert sort_errors(table, by)[by].is_monotonic_decreasing
    with pytest.raises(ValueError, match="confidence"):
        sort_errors(table, "index")


def test_compare_splits_the_two_runs_mistakes(runs):
    a, b = runs
    table_a, table_b = error_table(a.errors()), error_table(b.errors())
    groups = compare(table_a, table_b)
    wrong_a, wrong_b = set(table_a["index"]), set(table_b["index"])
    assert set(groups["only A"]) | set(groups["both"]) == wrong_a
    assert set(groups["only B"]) | set(groups["both"]) == wrong_b
    assert not set(groups["only A"]) & set(groups["only B"])


def test_losses_beyond_what_float16_keeps_are_said_as_such_and_ordered_by_confidence():
    errors = {"index": np.array([5, 6, 7, 8]), "true": np.array([1, 2, 3, 4]),
              "predicted": np.array([7, 7, 7, 7]), "confidence": np.array([0.9, 0.99, 0.6, 0.8]),
              "true_probability": np.array([0.0, 0.0, 1e-3, 0.0], dtype=np.float16),
              "image": np.zeros((4, 28, 28), np.uint8)}
    table = sort_errors(error_table(errors), "loss")
    assert table["index"].tolist() == [6, 5, 8, 7]  # no tie at a made-up floor: the surest first
    grid = charts.mistake_grid(table, images_by_index(errors), by="loss")
    assert grid.count(f"loss &gt; {LOSS_BEYOND:.1f}") == 3 and "loss 6.91" in grid
    assert 17 < LOSS_BEYOND < 18  # -log of half float16's smallest step
