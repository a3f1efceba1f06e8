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


def test_a_full_disk_while_drawing_a_figure_leaves_the_old_one_whole(tmp_path, monkeypatch):
    import errno

    from matplotlib.figure import Figure

    from mnist_core.store import StoreError

    (tmp_path / "lambda_sweep.png").write_bytes(b"the old figure")

    def half_then_full(self, target, **kwargs):
        target.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_then_full)
    with pytest.raises(StoreError, match="No space left on device.*kept whole: free some space"):
        plot_sweeps(COMMITTED, STANDARD_FINGERPRINT, tmp_path)
    assert (tmp_path / "lambda_sweep.png").read_bytes() == b"the old figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lambda_sweep.png"]  # no temporary left
