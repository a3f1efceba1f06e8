"""The committed results are complete, verifiable, lean, and their models still score what they say."""

import numpy as np
import pytest

from mnist_core.catalog import grid_configs, named_runs, reproduce_steps
from mnist_core.store import COMMITTED_STORE, RunStore, StoreChain

COMMITTED = RunStore(COMMITTED_STORE, read_only=True)
MAX_MEGABYTES = 75  # 70 MB: the reference experiments, the λ × width grid's 14 more runs (16 MB)


def committed_run(config, fingerprint):
    run = COMMITTED.get(config.key(fingerprint))
    assert run is not None, f"{config.label} is missing from cached_results/ or fails verification"
    return run


def test_every_reference_experiment_is_committed_and_verifies(mnist):
    missing = [config.label for _, configs in reproduce_steps() for config in configs
               if COMMITTED.get(config.key(mnist.fingerprint)) is None]
    assert missing == []


def test_the_lambda_width_grid_is_committed_and_verifies(mnist):
    missing = [c.label for c in grid_configs() if COMMITTED.get(c.key(mnist.fingerprint)) is None]
    assert missing == []


def test_named_runs_are_all_there(mnist):
    names = named_runs(StoreChain(COMMITTED), mnist.fingerprint)
    assert set(names) == {"baseline_mlp", "best_width_mlp", "reference_cnn", "improved_cnn"}


def test_committed_results_are_lean():
    total = sum(p.stat().st_size for p in COMMITTED_STORE.rglob("*") if p.is_file())
    assert total < MAX_MEGABYTES * 2**20, f"cached_results/ holds {total / 2**20:.1f} MB"


def sample(fingerprint) -> dict[str, object]:
    """The four named runs, and every fifth run of the reference experiments besides."""
    runs = named_runs(StoreChain(COMMITTED), fingerprint)
    configs = [config for _, step in reproduce_steps() for config in step]
    runs.update({config.label: COMMITTED.get(config.key(fingerprint)) for config in configs[::5]})
    return runs


@pytest.mark.slow
def test_committed_models_reproduce_their_test_accuracy(mnist, subtests):
    for name, run in sample(mnist.fingerprint).items():
        with subtests.test(run=name):
            reproduces_its_test_accuracy(run, mnist)


def reproduces_its_test_accuracy(run, mnist):
    model = run.load_model()
    logits = model.predict(mnist.x_test.astype(np.float32) / 255.0, batch_size=1000, verbose=0)
    accuracy = float(np.mean(logits.argmax(1) == mnist.y_test))
    assert accuracy == pytest.approx(run.test_accuracy, abs=2e-4)
    stored_errors = set(run.errors()["index"].tolist())
    assert len(stored_errors ^ set(np.flatnonzero(logits.argmax(1) != mnist.y_test).tolist())) <= 2
