import numpy as np
import pytest

from mnist_core.configs import RunConfig
from mnist_core.training import arrays_for, train

SMALL = RunConfig(hidden=(25, 15), epochs=1, limit=5000, seed=3)


@pytest.fixture(scope="module")
def small_run(mnist, tmp_path_factory):
    from mnist_core.store import RunStore

    return train(SMALL, mnist, RunStore(tmp_path_factory.mktemp("store")), progress=False)


def test_small_real_training_beats_chance_by_far(small_run):
    assert small_run.test_accuracy > 0.75  # chance is 0.10
    assert small_run.metrics["train_images"] == 5000
    assert small_run.metrics["trainer"] == "keras_fit"
    assert abs(small_run.metrics["test_error"] - (1 - small_run.test_accuracy)) < 1e-12
    assert set(small_run.metrics["versions"]) >= {"tensorflow", "keras", "numpy", "python"}


def test_stored_model_reproduces_its_metrics(small_run, mnist):
    import json
    import zipfile

    with zipfile.ZipFile(small_run.model_path) as archive:  # no optimizer state is kept
        assert not json.loads(archive.read("config.json")).get("compile_config")
    model = small_run.load_model()
    _, _, x_test, y_test = arrays_for(SMALL, mnist)
    logits = model.predict(x_test, verbose=0)
    assert logits.shape == (10000, 10)
    assert np.mean(logits.argmax(1) == y_test) == pytest.approx(small_run.test_accuracy)
    probabilities = small_run.predictions()
    assert probabilities.shape == (10000, 10)
    assert np.mean(probabilities.argmax(1) == y_test) == pytest.approx(small_run.test_accuracy, abs=2e-4)


def test_errors_are_the_misclassified_images(small_run, mnist):
    errors = small_run.errors()
    assert len(errors["index"]) == round((1 - small_run.test_accuracy) * 10000)
    assert np.array_equal(errors["image"], mnist.x_test[errors["index"]])
    assert np.array_equal(errors["true"], mnist.y_test[errors["index"]])
    assert (errors["predicted"] != errors["true"]).all()


def test_history_has_one_row_per_epoch(small_run):
    history = small_run.history()
    assert list(history.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(history) == SMALL.epochs


def test_same_config_and_seed_give_the_same_run(small_run, mnist, tmp_path):
    from mnist_core.store import RunStore

    again = train(SMALL, mnist, RunStore(tmp_path), progress=False)
    assert again.key == small_run.key
    assert again.metrics["test_loss"] == pytest.approx(small_run.metrics["test_loss"], rel=1e-6)


@pytest.mark.parametrize("model", ["mlp", "cnn", "improved_cnn"])
def test_every_architecture_maps_images_to_logits(model):
    import keras

    from mnist_core.models import build

    net = build(RunConfig.for_model(model))
    out = net(np.zeros((3, 28, 28), np.float32), training=False)
    assert tuple(out.shape) == (3, 10)
    assert isinstance(net.layers[-1], keras.layers.Dense) and net.layers[-1].activation.__name__ == "linear"


def test_reference_architectures():
    from mnist_core.models import build

    mlp = build(RunConfig(hidden=(25, 15), l2=0.01))
    assert mlp.count_params() == 784 * 25 + 25 + 25 * 15 + 15 + 15 * 10 + 10
    dense = [layer for layer in mlp.layers if layer.__class__.__name__ == "Dense"]
    assert [d.kernel_regularizer is not None for d in dense] == [True, True, False]
    cnn = build(RunConfig.for_model("cnn"))
    kinds = [(layer.__class__.__name__, getattr(layer, "filters", getattr(layer, "units", None)))
             for layer in cnn.layers if layer.__class__.__name__ in ("Conv2D", "MaxPooling2D", "Dense")]
    assert kinds == [("Conv2D", 32), ("MaxPooling2D", None), ("Conv2D", 64), ("MaxPooling2D", None),
                     ("Conv2D", 64), ("Dense", 64), ("Dense", 32), ("Dense", 10)]


@pytest.mark.slow
def test_small_cnn_trains(mnist, tmp_path):
    from mnist_core.store import RunStore

    run = train(RunConfig.for_model("cnn", epochs=1, limit=2000), mnist, RunStore(tmp_path), progress=False)
    assert run.test_accuracy > 0.6
    assert run.load_model()(np.zeros((1, 28, 28), np.float32)).shape == (1, 10)


@pytest.mark.parametrize("shape", [(16, 14, 14, 32), (64, 128)])
def test_fused_batch_norm_computes_what_keras_batch_norm_does(shape):
    import keras
    import tensorflow as tf

    from mnist_core.models import FusedBatchNormalization

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(1.0, 3.0, shape).astype(np.float32))
    keras_bn, fused_bn = keras.layers.BatchNormalization(), FusedBatchNormalization()
    for layer in (keras_bn, fused_bn):
        layer.build(shape)
    weights = [rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in keras_bn.get_weights()]
    for layer in (keras_bn, fused_bn):
        layer.set_weights(weights)
    for training in (True, False):  # training: batch statistics, and the moving ones updated
        np.testing.assert_allclose(fused_bn(x, training=training), keras_bn(x, training=training),
                                   atol=2e-5)
        for fused_weight, keras_weight in zip(fused_bn.get_weights(), keras_bn.get_weights()):
            np.testing.assert_allclose(fused_weight, keras_weight, rtol=1e-6, atol=1e-7)
    assert not np.allclose(keras_bn.get_weights()[2], weights[2])  # the moving mean did move


@pytest.mark.slow
def test_improved_cnn_trains_in_bfloat16_and_is_stored_scored_and_used_in_float32(mnist, tmp_path):
    from mnist_core.models import FusedBatchNormalization, build
    from mnist_core.store import RunStore

    config = RunConfig.for_model("improved_cnn", epochs=1, limit=1000, precision="mixed_bfloat16")
    training = build(config, for_training=True)
    convs = [layer for layer in training.layers if "conv" in layer.name]
    assert len(convs) == 4 and {layer.compute_dtype for layer in convs} == {"bfloat16"}
    assert training.layers[-1].compute_dtype == "float32"  # the logits
    assert sum(isinstance(layer, FusedBatchNormalization) for layer in training.layers) == 5
    assert all(w.dtype == "float32" for w in training.weights)
    run = train(config, mnist, RunStore(tmp_path), progress=False)
    model = run.load_model()
    assert {layer.compute_dtype for layer in model.layers} == {"float32"}
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)
    _, _, x_test, y_test = arrays_for(config, mnist)
    logits = model.predict(x_test, verbose=0)
    assert np.mean(logits.argmax(1) == y_test) == pytest.approx(run.test_accuracy)
    # 8 steps learn (accuracy in training mode, batch statistics); the moving statistics used at
    # inference have barely moved from their start by then, so the test accuracy says little.
    assert run.history()["accuracy"].iloc[-1] > 0.3  # chance is 0.1


def test_fit_path_sees_a_fresh_seeded_order_every_epoch():
    import keras
    import tensorflow as tf

    from mnist_core.training import shuffled_batches

    class Spy(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)
            self.seen = []

        def call(self, inputs):
            return self.dense(inputs)

        def train_step(self, data):
            record = lambda batch: self.seen.append(batch.numpy().ravel().astype(int).tolist()) or 0  # noqa: E731
            tf.py_function(record, [data[0]], tf.int32)
            return {"loss": tf.constant(0.0)}

    orders = []
    for _ in range(2):
        keras.utils.set_random_seed(0)
        spy = Spy()
        spy.compile(optimizer="adam", loss="mse")
        config = RunConfig(batch_size=20, seed=7)
        spy.fit(shuffled_batches(np.arange(20, dtype=np.float32)[:, None], np.zeros(20, np.int32), config),
                epochs=3, shuffle=False, verbose=0)  # the dataset brings its own order
        orders.append(spy.seen)
    assert len(orders[0]) == 3 and len({tuple(o) for o in orders[0]}) == 3  # reshuffled each epoch
    assert orders[0] == orders[1]  # and reproducible from the seed


def test_fit_batches_are_not_autotuned_and_come_in_the_seeded_order():
    """Autotuning off (a `fit` call waited for the autotuner's next wake-up) changes no batch."""
    import tensorflow as tf

    from mnist_core.training import shuffled_batches

    x, y = np.arange(100, dtype=np.float32)[:, None], np.arange(100, dtype=np.int32)
    config = RunConfig(batch_size=8, seed=3)
    batches = shuffled_batches(x, y, config)
    assert batches.options().autotune.enabled is False
    tuned = (tf.data.Dataset.range(100).shuffle(100, seed=3, reshuffle_each_iteration=True).batch(8)
             .map(lambda i: (tf.gather(x, i), tf.gather(y, i))).prefetch(2))
    assert tuned.options().autotune.enabled is not False
    for _ in range(2):  # two epochs: each reshuffled, the same either way
        ours = [b.numpy().tolist() for b, _ in batches]
        theirs = [b.numpy().tolist() for b, _ in tuned]
        assert ours == theirs and sorted(sum(ours, [])) == [[v] for v in range(100)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cnn", "improved_cnn", "mlp"])
def test_several_steps_per_compiled_call_train_bit_for_bit_as_one_step_per_call(mnist, kind):
    """The lab's fit (STEPS_PER_CALL steps per compiled call; 66 steps an epoch here, so one full
    call and a partial one) ends with exactly the weights of the reference way's one step per
    call: the same batches, the same order, the same kernels."""
    import keras

    from mnist_core.models import STEPS_PER_CALL, build, compile_for_training
    from mnist_core.training import shuffled_batches

    config = RunConfig.for_model(kind, limit=2100, epochs=2, batch_size=32)
    x, y, _, _ = arrays_for(config, mnist)
    weights = []
    for steps in (1, STEPS_PER_CALL):
        keras.utils.set_random_seed(config.seed)
        model = build(config, for_training=True)  # the improved CNN with fused batch norm
        compile_for_training(model, config, steps_per_epoch=66, steps_per_call=steps)
        model.fit(shuffled_batches(x, y, config), epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    assert STEPS_PER_CALL < 66 < 2 * STEPS_PER_CALL
    for one_step, several in zip(*weights):
        np.testing.assert_array_equal(one_step, several)
