"""Runs side by side (mnist_core.comparing), on the committed runs: no MNIST or TensorFlow."""

import numpy as np

from mnist_core.catalog import named_runs
from mnist_core.comparing import config_differences, per_digit_accuracy, runs_frame
from mnist_core.data import STANDARD_FINGERPRINT, TEST_LABEL_COUNTS
from mnist_core.store import StoreChain


def test_a_row_per_run_with_its_store_and_accuracy_per_digit_adding_up():
    stores = StoreChain.default(committed=True)
    runs = list(stores.runs())
    frame = runs_frame(runs, yours=stores.writable.root)
    assert len(frame) == len(runs) >= 62 and set(frame["store"]) <= {"committed", "yours"}
    assert frame["key"].is_unique and frame["test_accuracy"].between(0, 1).all()
    cnn = named_runs(stores, STANDARD_FINGERPRINT)["reference_cnn"]
    per_digit = per_digit_accuracy(cnn)
    counts = np.array([TEST_LABEL_COUNTS[d] for d in range(10)])
    assert per_digit.shape == (10,)
    assert abs((per_digit * counts).sum() / counts.sum() - cnn.test_accuracy) < 1e-9  # weighted by count


def test_only_what_differs_between_configs_is_listed():
    named = named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT)
    mlp, cnn = named["baseline_mlp"].config, named["reference_cnn"].config
    differences = config_differences([mlp, cnn])
    assert differences["model"] == ["mlp", "cnn"] and "precision" not in differences
    assert config_differences([mlp, mlp]) == {} and config_differences([]) == {}
