"""Classifying one drawing with several models through their compiled predictors."""

import numpy as np
import pytest

from mnist_core.catalog import named_runs
from mnist_core.data import STANDARD_FINGERPRINT
from mnist_core.reading.predict import classify, disagreements, predictor
from mnist_core.reading.preprocess import to_mnist
from mnist_core.store import StoreChain


@pytest.fixture(scope="module")
def models():
    named = named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT)
    return {name: run.load_model() for name, run in named.items()}


@pytest.fixture(scope="module")
def predict(models):
    return predictor(models)


def test_every_model_reads_test_digits_and_survives_streamlits_clear_session(mnist, models, predict):
    import keras

    for index in range(5):
        keras.backend.clear_session()  # Streamlit calls it after every script run
        image = mnist.x_test[index] / 255.0
        probabilities = classify(image, predict)
        assert list(probabilities) == list(models)
        for name, probs in probabilities.items():
            assert probs.shape == (10,) and probs.sum() == pytest.approx(1.0)
            # the compiled predictor gives each model's own answer, in its own name
            expected = keras.ops.softmax(models[name](image[None].astype(np.float32), training=False))[0]
            np.testing.assert_allclose(probs, keras.ops.convert_to_numpy(expected), atol=1e-6)
        assert probabilities["improved_cnn"].argmax() == mnist.y_test[index]


def test_an_empty_canvas_is_not_a_digit():
    assert to_mnist(np.zeros((280, 280, 4), np.uint8)) is None


def test_disagreements_mark_the_minority():
    one_hot = np.eye(10)
    flags = disagreements({"a": one_hot[3], "b": one_hot[3], "c": one_hot[5]})
    assert flags == {"a": False, "b": False, "c": True}
    assert disagreements({}) == {}
