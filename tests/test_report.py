"""The README's results table and sweep images, made from the committed runs."""

import pytest

from mnist_core.catalog import named_runs
from mnist_core.data import STANDARD_FINGERPRINT
from mnist_core.report import ensemble_accuracy, markdown, plot_sweeps, results
from mnist_core.store import StoreChain

COMMITTED = StoreChain.default(committed=True)


def test_table_has_every_experiment_with_its_command():
    frame = results(COMMITTED, STANDARD_FINGERPRINT)
    experiments = " | ".join(frame["experiment"])
    for expected in ("Baseline MLP", "Best lambda point", "Best width", "Reference CNN, 10 epochs",
                     "Improved CNN"):
        assert expected in experiments
    assert "not stored" not in frame["ours (mean ± std)"].tolist()
    assert all(command.startswith("python -m mnist_core") for command in frame["command"])
    text = markdown(frame)
    assert text.count("\n") == len(frame) + 1 and "96.40%" in text


def test_an_ensemble_of_one_run_scores_that_run(mnist):
    run = named_runs(COMMITTED, mnist.fingerprint)["reference_cnn"]
    assert ensemble_accuracy([run], mnist.y_test) == pytest.approx(run.test_accuracy, abs=1e-4)
    assert ensemble_accuracy([run, run], mnist.y_test) == pytest.approx(run.test_accuracy, abs=1e-4)


def test_sweep_images_are_drawn(tmp_path):
    paths = plot_sweeps(COMMITTED, STANDARD_FINGERPRINT, tmp_path)
    assert sorted(p.name for p in paths) == ["lambda_sweep.png", "width_sweep.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
