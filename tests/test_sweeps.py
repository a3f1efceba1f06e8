import pytest

from mnist_core import fused, training
from mnist_core.catalog import (
    REFERENCE_LAMBDAS,
    REFERENCE_WIDTHS,
    named_runs,
    parse_lambdas,
    parse_width_pairs,
    reproduce_steps,
)
from mnist_core.configs import ConfigError, RunConfig
from mnist_core.sweeps import ensure_runs, lambda_sweep, width_sweep


def forbid_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a stored run was trained again")

    monkeypatch.setattr(fused, "train_fused", refuse)
    monkeypatch.setattr(training, "train", refuse)


def test_reference_grids():
    assert REFERENCE_LAMBDAS == (0.0, 0.001, 0.003, 0.01, 0.05, 0.1, 0.2, 0.3)
    assert REFERENCE_WIDTHS[0] == (10, 5) and REFERENCE_WIDTHS[-1] == (1200, 480)
    assert len(REFERENCE_WIDTHS) == 11


@pytest.mark.slow
def test_lambda_sweep_table_and_reuse(mnist, stores, monkeypatch):
    frame = lambda_sweep([0, 0.01], seeds=[0, 1], epochs=1, limit=1000, data=mnist, stores=stores,
                         progress=False)
    assert len(frame) == 4
    assert sorted(frame["l2"].unique()) == [0.0, 0.01]
    assert sorted(frame["seed"].unique()) == [0, 1]
    assert {"train_error", "test_error", "test_accuracy", "train_accuracy", "key"} <= set(frame.columns)
    assert ((frame["test_error"] + frame["test_accuracy"]) - 1).abs().max() < 1e-12
    assert frame["key"].is_unique
    forbid_training(monkeypatch)
    again = lambda_sweep([0, 0.01], seeds=[0, 1], epochs=1, limit=1000, data=mnist, stores=stores,
                         progress=False)
    assert again.equals(frame)


@pytest.mark.slow
def test_width_sweep_reuses_and_extends(mnist, stores):
    first = width_sweep([(10, 5)], epochs=1, limit=1000, data=mnist, stores=stores, progress=False)
    second = width_sweep([(10, 5), (20, 8)], epochs=1, limit=1000, data=mnist, stores=stores,
                         progress=False)
    assert second.iloc[0].equals(first.iloc[0])
    assert second["neurons"].tolist() == [15, 28]
    assert second["hidden"].tolist() == ["10/5", "20/8"]


def test_ensure_runs_one_at_a_time_and_duplicates(mnist, stores):
    config = RunConfig(hidden=(10, 5), epochs=1, limit=500)
    runs = ensure_runs([config, config], mnist, stores, fused=False, progress=False)
    assert runs[0].key == runs[1].key and runs[0].metrics["trainer"] == "keras_fit"


def test_reproduce_covers_every_reference_experiment():
    steps = dict(reproduce_steps())
    configs = [c for group in steps.values() for c in group]
    assert sum(c.model == "mlp" and c.hidden == (25, 15) for c in configs) == 8 * 3
    widths = [c for c in configs if c.model == "mlp" and c.hidden != (25, 15)]
    assert {c.hidden for c in widths} == set(REFERENCE_WIDTHS) - {(25, 15)}
    assert {c.seed for c in widths if c.hidden == (1200, 480)} == {0}
    assert {c.seed for c in widths if c.hidden == (10, 5)} == {0, 1, 2}
    assert sum(c.model == "cnn" and c.epochs == 10 for c in configs) == 3
    assert any(c.model == "cnn" and c.epochs >= 20 for c in configs)
    assert any(c.model == "improved_cnn" for c in configs)


def test_named_runs_only_lists_stored(stores):
    assert named_runs(stores, "0" * 64) == {}


@pytest.mark.slow
def test_every_mlp_in_a_mixed_request_is_trained_once(mnist, stores):
    configs = [RunConfig(hidden=(10, 5), epochs=1, limit=500, seed=s) for s in (0, 1)]
    configs.append(RunConfig.for_model("cnn", epochs=1, limit=500))
    runs = ensure_runs(configs, mnist, stores, progress=False)
    assert [r.metrics["trainer"] for r in runs] == ["fused", "fused", "keras_fit"]
    assert len(stores.writable.keys()) == 3
    with pytest.raises(AssertionError):
        assert stores.get("0" * 64)


@pytest.mark.parametrize("text, values", [("0, 0.001,1e-2", [0.0, 0.001, 0.01]), ("0;-0; 0.3", [0.0, 0.3]),
                                          (" 0.1 ,, 0.1 ", [0.1])])
def test_lambda_lists_the_cli_and_the_pages_accept(text, values):
    assert parse_lambdas(text) == values


@pytest.mark.parametrize("text, message", [("abc", "'abc' is not a number"),
                                           ("0,-0.1", "numbers from 0 to 100"),
                                           ("nan", "numbers from 0 to 100"), ("", "no lambdas"),
                                           ("0.1, 1e9", "'1e9': lambdas must be numbers from 0 to 100")])
def test_lambda_lists_refused_say_what_is_accepted(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_lambdas(text)


@pytest.mark.parametrize("text, message", [("25-10", "pairs like 25:10"), ("10:0", "from 1 to"),
                                           ("10:5:3", "pairs like"), ("a:b", "pairs like"),
                                           (" ", "no widths")])
def test_width_pairs_refused_say_what_is_accepted(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_width_pairs(text)


def test_width_pairs_accepted():
    assert parse_width_pairs("10:5, 25:10;25:10") == [(10, 5), (25, 10)]


def test_pooled_reproduce_is_the_same_runs_in_one_step():
    chunks = [c for _, step in reproduce_steps() for c in step]
    (title, pooled), = reproduce_steps(pooled=True)
    assert "one pool" in title and pooled == list(dict.fromkeys(chunks)) and len(pooled) == len(chunks)


@pytest.mark.slow
def test_sweep_grid_lands_every_cell_as_a_stored_run_and_prints_the_grid(mnist, tmp_path, monkeypatch,
                                                                          capsys):
    from mnist_core.__main__ import main
    from mnist_core.catalog import grid_configs
    from mnist_core.store import RunStore

    monkeypatch.setenv("MNIST_PATH", mnist.source)
    args = ["sweep", "grid", "--values", "0,0.01", "--widths", "10:5,20:10", "--epochs", "1", "--limit",
            "1000", "--store", str(tmp_path), "--no-committed", "--quiet"]
    assert main(args) in (0, None)
    printed = capsys.readouterr().out
    configs = grid_configs([0, 0.01], [(10, 5), (20, 10)], epochs=1, limit=1000)
    assert len(configs) == 4 and {c.hidden for c in configs} == {(10, 5), (20, 10)}
    runs = [RunStore(tmp_path).get(c.key(mnist.fingerprint)) for c in configs]
    assert all(runs) and {r.metrics["trainer"] for r in runs} == {"fused"}
    rows = printed.splitlines()
    assert "rows: lambda, columns: hidden widths" in rows[0] and rows[1].split() == ["10/5", "20/10"]
    cells = [line.split() for line in rows[3:]]
    assert [row[0] for row in cells] == ["0", "0.01"] and len(cells[0]) == 3  # λ, then one % per width
    assert f"{runs[0].metrics['test_error']:.2%}" == cells[0][1]
    monkeypatch.setattr(fused, "train_fused", lambda *a, **k: pytest.fail("a stored cell was trained again"))
    assert main(args) in (0, None)
