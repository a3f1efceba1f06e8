import numpy as np
import pytest

from mnist_core.configs import RunConfig
from mnist_core.fused import FusedMLPs, compatible, initial_weights, train_fused
from mnist_core.training import arrays_for, train


def test_groups_and_shapes():
    configs = [RunConfig(hidden=(10, 5), seed=0), RunConfig(hidden=(40, 15), seed=0),
               RunConfig(hidden=(10, 5), seed=1, l2=0.01)]
    fused = FusedMLPs(configs)
    assert fused.groups == [[0, 2], [1]]
    wide = [RunConfig(hidden=(600, 240), seed=0), RunConfig(hidden=(600, 240), seed=1)]
    assert FusedMLPs(wide).groups == [[0], [1]]  # wide models train alone (mnist_core.planning)
    assert [tuple(v.shape) for v in fused.params[0]] == [(2, 784, 10), (2, 10), (2, 10, 5), (2, 5),
                                                         (2, 5, 10), (2, 10)]
    assert [tuple(v.shape) for v in fused.params[1]][0] == (1, 784, 40)
    for index, config in enumerate(configs):
        for got, expected in zip(fused.weights_of(index), initial_weights(config)):
            assert np.array_equal(got, expected)  # the same start as a Keras fit with that seed


def test_per_model_l2_matches_keras_penalty():
    from mnist_core.models import build

    configs = [RunConfig(l2=value, seed=i) for i, value in enumerate((0.0, 0.001, 0.3))]
    fused = FusedMLPs(configs)
    penalty = fused.penalty(fused.params[0], fused.l2[0]).numpy()
    for index, config in enumerate(configs):
        model = build(config)
        model.set_weights(fused.weights_of(index))
        model(np.zeros((1, 28, 28), np.float32))
        keras_penalty = float(sum(loss.numpy() for loss in model.losses)) if model.losses else 0.0
        assert penalty[index] == pytest.approx(keras_penalty, rel=1e-5, abs=1e-7)


def test_incompatible_configs_are_refused():
    with pytest.raises(ValueError, match="share"):
        compatible([RunConfig(epochs=1), RunConfig(epochs=2)])
    with pytest.raises(ValueError, match="MLP"):
        compatible([RunConfig.for_model("cnn")])


@pytest.mark.slow
def test_published_models_reload_and_score_their_metrics(mnist, store):
    configs = [RunConfig(hidden=(25, 15), l2=value, epochs=1, limit=3000) for value in (0.0, 0.01)]
    configs.append(RunConfig(hidden=(40, 15), epochs=1, limit=3000))
    runs = train_fused(configs, mnist, store, progress=False)
    _, _, x_test, y_test = arrays_for(configs[0], mnist)
    for run, config in zip(runs, configs):
        assert run.config == config and run.metrics["trainer"] == "fused"
        assert run.metrics["fused_models"] == 3
        model = run.load_model()
        accuracy = np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test)
        assert accuracy == pytest.approx(run.test_accuracy)
        assert run.test_accuracy > 0.5  # 3,000 images, one epoch; chance is 0.10
        assert len(run.history()) == 1


@pytest.mark.slow
def test_fused_agrees_with_one_fit_per_model_within_seed_spread(mnist, tmp_path):
    from mnist_core.store import RunStore

    configs = [RunConfig(hidden=(25, 15), l2=0.001, epochs=2, limit=6000, seed=s) for s in range(4)]
    fused = [r.test_accuracy for r in train_fused(configs, mnist, RunStore(tmp_path / "f"), False)]
    single = [train(c, mnist, RunStore(tmp_path / "s"), False).test_accuracy for c in configs]
    spread = max(np.std(fused), np.std(single))
    assert abs(np.mean(fused) - np.mean(single)) <= 2 * spread + 0.005, (fused, single)


@pytest.mark.slow
@pytest.mark.parametrize("limit", [10, 100, 126])
def test_fused_trains_fewer_images_than_one_compiled_call(mnist, store, limit):
    configs = [RunConfig(hidden=(10, 5), epochs=2, limit=limit, seed=s) for s in (0, 1)]
    runs = train_fused(configs, mnist, store, progress=False)
    assert [r.metrics["train_images"] for r in runs] == [limit, limit]
    assert all(len(r.history()) == 2 for r in runs)


@pytest.mark.slow
def test_a_models_weights_depend_on_its_stack_only_by_one_or_more(mnist, tmp_path):
    """What the Ray backend relies on (README, Scale out): a model trained in a fused stack of
    2, 3 or 5 models of its shape ends with the same bits; alone (a stack of one, other XLA
    kernels) it ends within float32 rounding of them."""
    from mnist_core.catalog import lambda_configs
    from mnist_core.store import RunStore

    configs = lambda_configs([0, 0.001, 0.01, 0.1, 0.3], [0], epochs=2, limit=4000)
    weights = {}
    for size in (5, 3, 2, 1):
        (run, *_) = train_fused(configs[:size], mnist, RunStore(tmp_path / str(size)), progress=False)
        weights[size] = run.load_model().get_weights()
    for size in (3, 2):
        assert all(np.array_equal(a, b) for a, b in zip(weights[size], weights[5]))
    gap = max(float(np.abs(a - b).max()) for a, b in zip(weights[1], weights[5]))
    assert gap < 1e-5  # measured 1.6e-7


@pytest.mark.slow
def test_a_group_without_l2_leaves_the_penalty_out_and_trains_the_same_bits(mnist, tmp_path):
    """A width-sweep group (every λ = 0) skips the penalty; its λ = 0 model ends with the bits
    it gets in a group that computes the penalty (because another model has λ > 0)."""
    from mnist_core.store import RunStore

    unregularized = [RunConfig(l2=0.0, epochs=2, limit=4000, seed=s) for s in (0, 1)]
    mixed = [RunConfig(l2=0.0, epochs=2, limit=4000, seed=0), RunConfig(l2=0.01, epochs=2, limit=4000)]
    alone, _ = train_fused(unregularized, mnist, RunStore(tmp_path / "a"), progress=False)
    beside, _ = train_fused(mixed, mnist, RunStore(tmp_path / "b"), progress=False)
    assert alone.key == beside.key
    for a, b in zip(alone.load_model().get_weights(), beside.load_model().get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_lone_shape_group_is_cut_in_halves_of_two_or_more_for_the_cores():
    from mnist_core.fused import spread

    assert spread([list(range(8))], 2) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert spread([list(range(5))], 2) == [[0, 1, 2], [3, 4]]
    assert spread([list(range(24))], 4) == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11],
                                           [12, 13, 14, 15, 16, 17], [18, 19, 20, 21, 22, 23]]
    assert spread([[0, 1, 2]], 2) == [[0, 1, 2]]  # halves of one and two: a model would be alone
    assert spread([[0, 1, 2, 3], [4]], 2) == [[0, 1, 2, 3], [4]]  # already a group per thread
    assert spread([list(range(8))], 1) == [list(range(8))]


@pytest.mark.slow
def test_cutting_a_group_for_the_cores_trains_the_same_bits(mnist, tmp_path, monkeypatch):
    import mnist_core.fused as fused_module
    from mnist_core.catalog import lambda_configs
    from mnist_core.store import RunStore

    configs = lambda_configs([0, 0.001, 0.01, 0.1, 0.3], [0], epochs=2, limit=4000)
    weights = {}
    for threads in (1, 2):
        monkeypatch.setattr(fused_module, "threads", lambda count=threads: count)
        assert len(FusedMLPs(configs).groups) == threads
        runs = train_fused(configs, mnist, RunStore(tmp_path / str(threads)), progress=False)
        weights[threads] = [run.load_model().get_weights() for run in runs]
    for one, two in zip(weights[1], weights[2]):
        assert all(np.array_equal(a, b) for a, b in zip(one, two))


@pytest.mark.slow
def test_a_kept_graph_trains_a_later_task_of_its_layout_without_tracing_to_the_same_bits(mnist, tmp_path):
    """A Ray worker keeps its compiled graphs (fused.CompiledGraphs): a later task of the same
    layout (other seeds, other L2 factors) trains in them, not traced again, and its models end
    with the bits a fresh graph gives them."""
    from mnist_core.catalog import lambda_configs
    from mnist_core.fused import CompiledGraphs
    from mnist_core.store import RunStore

    earlier = lambda_configs([0.3], [7, 8], epochs=2, limit=2000)
    later = lambda_configs([0.01], [0, 1], epochs=2, limit=2000)
    fresh = train_fused(later, mnist, RunStore(tmp_path / "fresh"), progress=False)
    graphs = CompiledGraphs()
    train_fused(earlier, mnist, RunStore(tmp_path / "earlier"), progress=False, graphs=graphs)
    (kept,) = graphs.kept.values()
    traces = kept.epoch_fn.experimental_get_tracing_count()
    again = train_fused(later, mnist, RunStore(tmp_path / "again"), progress=False, graphs=graphs)
    assert list(graphs.kept.values()) == [kept]
    assert kept.epoch_fn.experimental_get_tracing_count() == traces
    for a, b in zip(fresh, again):
        assert a.key == b.key and a.metrics["test_loss"] == b.metrics["test_loss"]
        for x, y in zip(a.load_model().get_weights(), b.load_model().get_weights()):
            np.testing.assert_array_equal(x, y)
    small = CompiledGraphs(budget_bytes=0)
    small.fused(later)
    assert not small.kept  # over its budget: nothing kept
