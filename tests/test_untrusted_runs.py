"""Stored runs whose files match their manifest but hold the wrong things: every reader treats
them as missing, says so once, and nothing that lists runs (CLI, pages) goes down."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnist_core.catalog import named_runs
from mnist_core.configs import RunConfig
from mnist_core.safe_read import UnsafeFile
from mnist_core.store import COMMITTED_STORE, RunStore, StoreChain
from tests import forge

REPO = Path(__file__).resolve().parent.parent
FINGERPRINT = "f" * 64
CONFIG = RunConfig(hidden=(10, 5), epochs=1, limit=100)
STANDARD = StoreChain(RunStore(COMMITTED_STORE, read_only=True))
BASELINE_KEY = named_runs(STANDARD, json.loads(
    next(COMMITTED_STORE.glob("*/config.json")).read_text())["data_fingerprint"])["baseline_mlp"].key
CNN_KEY = named_runs(STANDARD, STANDARD.get(BASELINE_KEY).data_fingerprint)["reference_cnn"].key


def small_run(store: RunStore) -> Path:
    return store.publish(CONFIG.key(FINGERPRINT), CONFIG, FINGERPRINT, forge.write_small_run).path


@pytest.mark.parametrize("kind", list(forge.DAMAGES))
def test_a_run_with_wrong_content_is_reported_once_and_treated_as_missing(store, kind, caplog):
    folder = small_run(store)
    forge.damage(folder, kind)
    key = folder.name
    with caplog.at_level(logging.WARNING, logger="mnist_core.store"):
        assert store.get(key) is None
        assert store.get(key) is None
        assert list(store.runs()) == []
    warnings = [r.getMessage() for r in caplog.records if key in r.getMessage()]
    assert len(warnings) == 1 and "retrained" in warnings[0], warnings


def test_a_corrupt_run_is_replaced_when_published_again(store):
    folder = small_run(store)
    forge.damage(folder, "string test_accuracy")
    run = store.publish(CONFIG.key(FINGERPRINT), CONFIG, FINGERPRINT, forge.write_small_run)
    assert run.test_accuracy == 0.999 and store.get(run.key) == run


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["test_accuracy", "train_error", "wall_time_s", "param_count", "trainer",
                              "epochs_trained", "test_loss"]),
       value=JSON_VALUES)
def test_any_metric_value_is_read_or_refused_never_raised(tmp_path_factory, field, value):
    store = RunStore(tmp_path_factory.mktemp("fuzz"))
    folder = small_run(store)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics[field] = value
    (folder / "metrics.json").write_text(json.dumps(metrics))
    forge.reseal(folder)
    run = store.get(folder.name)
    if run is not None:  # accepted only with a value of the promised type and range
        assert isinstance(run.metrics[field], (int, float, str))
        assert run.metrics["test_accuracy"] <= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["history.csv", "metrics.json", "config.json", "manifest.json"]),
       content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_in_a_run_file_are_refused_never_raised(tmp_path_factory, name, content):
    store = RunStore(tmp_path_factory.mktemp("fuzz"))
    folder = small_run(store)
    (folder / name).write_bytes(content)
    if name != "manifest.json":
        forge.reseal(folder)
    assert store.get(folder.name) is None


def test_a_model_of_another_architecture_is_refused_on_load_with_one_plain_line(store):
    folder = forge.copy_of_committed(store, BASELINE_KEY, RunConfig(seed=90))
    forge.wrong_model(folder, CNN_KEY)
    run = store.get(folder.name)
    assert run is not None  # the run's numbers are fine; only its model is not what it says
    with pytest.raises(UnsafeFile, match="another architecture than this run's MLP 25-15") as caught:
        run.load_model()
    assert "\n" not in str(caught.value)


def test_a_model_file_that_is_no_keras_archive_is_refused(store):
    folder = forge.copy_of_committed(store, BASELINE_KEY, RunConfig(seed=91))
    (folder / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    forge.reseal(folder)
    assert store.get(folder.name) is None


DAMAGED_CONFIGS = {kind: RunConfig(seed=seed, epochs=1, limit=500)
                   for seed, kind in enumerate(forge.DAMAGES, start=100)}


@pytest.fixture
def damaged_store(tmp_path):
    """A user store holding one copy of a committed run per kind of damage (each filed under a
    small config the CLI can retrain), and one good copy whose model is another architecture's."""
    store = RunStore(tmp_path / "damaged")
    store.root.mkdir()
    for kind, config in DAMAGED_CONFIGS.items():
        forge.damage(forge.copy_of_committed(store, BASELINE_KEY, config), kind)
    wrong = forge.copy_of_committed(store, BASELINE_KEY, RunConfig(seed=99))
    forge.wrong_model(wrong, CNN_KEY)
    return store, wrong.name


def cli(*args, store, env=None):
    return subprocess.run([sys.executable, "-m", "mnist_core", *args, "--store", str(store)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def test_list_stays_up_with_damaged_runs_in_the_store(damaged_store):
    store, wrong_model_key = damaged_store
    listing = cli("list", "--json", store=store.root)
    assert listing.returncode == 0, listing.stderr
    keys = [entry["key"] for entry in json.loads(listing.stdout)]
    assert wrong_model_key in keys and BASELINE_KEY in keys
    assert len(keys) == len(list(STANDARD.runs())) + 1  # the damaged ones are left out
    assert "Traceback" not in listing.stderr


@pytest.mark.slow
def test_train_and_sweep_retrain_damaged_runs(damaged_store, mnist):
    store, _ = damaged_store
    env = {"MNIST_PATH": mnist.source}
    sweep = cli("sweep", "lambda", "--values", "0", "--seeds", "100,101,102", "--limit", "500",
                "--epochs", "1", "--quiet", store=store.root, env=env)
    assert sweep.returncode == 0 and "Traceback" not in sweep.stderr, sweep.stderr
    train = cli("train", "--seed", "103", "--epochs", "1", "--limit", "500", "--quiet",
                store=store.root, env=env)
    assert train.returncode == 0 and "test accuracy" in train.stdout, train.stderr
    for seed in (100, 101, 102, 103):
        key = RunConfig(seed=seed, epochs=1, limit=500).key(mnist.fingerprint)
        assert store.get(key) is not None  # retrained in place of the damaged entry
    assert not list(store.root.glob(".trash-*")) and not list(store.root.glob(".tmp-*"))


@pytest.fixture
def fresh_page_caches():
    import streamlit as st

    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_page_caches")
def test_every_page_stays_up_with_damaged_runs_in_the_store(damaged_store, monkeypatch):
    from streamlit.testing.v1 import AppTest

    store, wrong_model_key = damaged_store
    monkeypatch.setenv("MNIST_LAB_STORE", str(store.root))
    app = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    app.query_params["run"] = wrong_model_key
    app.run()
    for page in ("pages/lambda_sweep.py", "pages/width_sweep.py", "pages/grid.py", "pages/errors.py",
                 "pages/draw.py", "pages/overview.py"):
        app.switch_page(page)
        app.run()
        assert not app.exception, (page, [e.value for e in app.exception])
    app.switch_page("pages/draw.py")
    app.run()
    left_out = [w.value for w in app.warning if "left out" in w.value]
    assert len(left_out) == 1 and "\n" not in left_out[0]
    assert "another architecture than this run's MLP 25-15" in left_out[0]
    assert "<b>improved_cnn</b>" in app.html[0].value  # the other models still read drawings
