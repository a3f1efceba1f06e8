"""The Draw page's look inside a model: layers, integrated gradients, nearest training digits."""

import re
import shutil

import numpy as np
import pytest

from mnist_core.catalog import named_runs
from mnist_core.configs import RunConfig
from mnist_core.data import STANDARD_FINGERPRINT
from mnist_core.models import build
from mnist_core.reading.inside import Inspector, shown_layers
from mnist_core.reading.neighbours import SUBSET_FILE, Neighbours, choose_subset, read_subset, write_subset
from mnist_core.safe_read import UnsafeFile
from mnist_core.store import StoreChain
from pages.parts.charts import with_article
from pages.parts.inside_view import FEW, GRID_WIDTH, _bars, _overlay, layers_html, why_html


@pytest.fixture(scope="module")
def models():
    named = named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT)
    return {name: named[name].load_model() for name in ("baseline_mlp", "reference_cnn", "improved_cnn")}


@pytest.fixture(scope="module")
def inspectors(models):
    return {name: Inspector(model) for name, model in models.items()}


@pytest.fixture(scope="module")
def subset():
    return read_subset()


def test_the_layers_shown_are_those_past_a_nonlinearity():
    def shapes_of(kind):
        return [tuple(layer.output.shape[1:]) for layer in shown_layers(build(RunConfig.for_model(kind)))]

    shapes = {kind: shapes_of(kind) for kind in ("mlp", "cnn", "improved_cnn")}
    assert shapes["mlp"] == [(25,), (15,)]
    assert shapes["cnn"] == [(26, 26, 32), (11, 11, 64), (3, 3, 64), (64,), (32,)]
    assert shapes["improved_cnn"] == [(28, 28, 32), (28, 28, 32), (14, 14, 64), (14, 14, 64), (128,)]


@pytest.mark.slow
def test_a_look_matches_the_model_and_integrated_gradients_add_up(models, inspectors, subset):
    """Completeness: a pixel map sums to the change in its target from the black image to the
    drawing, for the top digit and for top minus runner-up, up to the 32-step integral's error
    (measured: a median of 2% or less; for the improved CNN up to 31% on some digits)."""
    images = subset.floats()[::1000]  # one of each digit
    for name, model in models.items():
        errors = []
        for image in images:
            look = inspectors[name].look(image)
            logits = np.asarray(model(np.stack([image, np.zeros_like(image)]), training=False), np.float64)
            assert look.probabilities.argmax() == logits[0].argmax() == look.top
            assert look.runner_up == np.argsort(logits[0])[-2]
            np.testing.assert_allclose(np.log(look.probabilities) - np.log(look.probabilities).mean(),
                                       logits[0] - logits[0].mean(), atol=1e-3)
            top_gain = logits[0, look.top] - logits[1, look.top]
            margin_gain = (logits[0, look.top] - logits[0, look.runner_up]) - (
                logits[1, look.top] - logits[1, look.runner_up])
            assert look.top_gain == pytest.approx(top_gain, rel=1e-3, abs=1e-3)
            # relative to the change, or to one logit where the change is smaller than that
            errors += [abs(look.drives_top.sum() - top_gain) / max(abs(top_gain), 1),
                       abs(look.top_versus_runner_up.sum() - margin_gain) / max(abs(margin_gain), 1)]
            assert look.completeness == pytest.approx(look.drives_top.sum() / top_gain, rel=1e-3)
            assert np.all(look.drives_top[image == 0] == 0)  # from black, blank pixels get nothing
            assert [layer.values.shape for layer in look.layers] == [
                tuple(layer.output.shape[1:]) for layer in shown_layers(model)]
        assert np.median(errors) <= 0.05 and max(errors) <= 0.4, (name, np.round(errors, 3))


@pytest.mark.slow
def test_integrated_gradients_converge_to_the_exact_change(models, subset):
    """With many steps the integral's error vanishes: the maps are the method, not an estimate
    of something else."""
    model = models["reference_cnn"]
    inspector = Inspector(model, steps=256)
    for image in subset.floats()[::2000]:
        look = inspector.look(image)
        black = np.asarray(model(np.zeros((1, 28, 28), np.float32), training=False))[0]
        here = np.asarray(model(image[None], training=False))[0]
        assert look.drives_top.sum() == pytest.approx(here[look.top] - black[look.top], rel=0.01)


def test_new_drawings_do_not_recompile_the_look(inspectors, subset):
    """One XLA compile per model: a look at a new image takes milliseconds, not a recompile
    (about 30 s for the improved CNN, which a value-dependent slice once caused)."""
    import time

    started = time.perf_counter()
    for image in subset.floats()[1:2000:400]:
        inspectors["improved_cnn"].look(image)
    assert time.perf_counter() - started < 10


def test_the_committed_subset_is_1000_of_each_digit_and_is_mnist(subset, mnist):
    assert np.bincount(subset.labels, minlength=10).tolist() == [1000] * 10
    np.testing.assert_array_equal(subset.images, mnist.x_train[subset.indices])
    np.testing.assert_array_equal(subset.labels, mnist.y_train[subset.indices])
    np.testing.assert_array_equal(subset.indices, choose_subset(mnist.y_train))  # reproducible
    assert SUBSET_FILE.stat().st_size < 3_000_000


@pytest.mark.slow
def test_a_training_digit_is_its_own_nearest_neighbour(inspectors, subset):
    for name, inspector in inspectors.items():
        neighbours = Neighbours(inspector.embed(subset.floats()), subset)
        for position in (0, 4321, 9999):
            look = inspector.look(subset.floats()[position])
            found, distances = neighbours.nearest(look.embedding)
            assert len(found) == 8 and np.all(np.diff(distances) >= 0)
            assert abs(distances[0]) < 1e-4, name
            same = found[distances < 1e-4]  # MNIST has a few duplicates: the digit is among those
            assert position in same, name
            assert (subset.labels[found] == subset.labels[position]).sum() >= 6, name


@pytest.mark.parametrize("damage, message", [
    ({"labels": lambda a: np.where(np.arange(len(a)) == 3, 11, a).astype(np.uint8)}, "label 11"),
    ({"indices": lambda a: np.concatenate([a[:-1], a[:1]])}, "distinct"),
    ({"indices": lambda a: a + 60000}, "distinct"),
    ({"labels": lambda a: a[:-1]}, "labels"),
    ({"images": lambda a: a.astype(np.float32)}, "dtype"),
    ({"images": lambda a: a.astype(object)}, "dtype"),
    ({"images": lambda a: a[:, :14]}, "shape"),
])
def test_a_damaged_subset_is_refused_saying_why(tmp_path, subset, damage, message):
    arrays = {"images": subset.images, "labels": subset.labels, "indices": subset.indices.astype(np.int32)}
    arrays.update({name: change(arrays[name]) for name, change in damage.items()})
    path = tmp_path / "subset.npz"
    np.savez(path, **arrays)  # an object array is pickled: the reader must refuse it
    with pytest.raises(UnsafeFile, match=message):
        read_subset(path)


def test_a_truncated_subset_is_refused(tmp_path):
    path = tmp_path / "subset.npz"
    shutil.copy(SUBSET_FILE, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UnsafeFile, match="not a readable"):
        read_subset(path)


def test_writing_the_subset_gives_the_committed_arrays(tmp_path, mnist, subset):
    written = read_subset(write_subset(mnist, tmp_path / "subset.npz"))
    for name in ("images", "labels", "indices"):
        np.testing.assert_array_equal(getattr(written, name), getattr(subset, name))


def test_the_view_shows_both_maps_eight_labelled_neighbours_and_every_layer(inspectors, subset):
    inspector = inspectors["reference_cnn"]
    image = subset.floats()[subset.labels == 4][0]
    look = inspector.look(image)
    neighbours = Neighbours(inspector.embed(subset.floats()), subset)
    positions, distances = neighbours.nearest(look.embedding)
    why = why_html("reference_cnn", image, look, (subset, positions, distances))
    assert f"What makes it {with_article(look.top)}" in why
    assert f"{with_article(look.top).capitalize()} rather than {with_article(look.runner_up)}" in why
    assert why.count("data-neighbour=") == 8
    assert "among a committed subset of 10,000 MNIST training digits" in why
    assert re.search(r"The shares add up to \d+% of how far the score rises from a blank canvas", why)
    layers = layers_html("reference_cnn", look.layers)
    assert layers.count('data-kind="maps"') == 3 and layers.count('data-kind="units"') == 2
    assert layers.count(f"the {FEW} most active of 64 filters") == 2  # the 64-filter blocks, large
    assert "the 8 most active of 32 filters" in layers
    every = layers_html("reference_cnn", look.layers, every=True)
    assert "all 64 filters" in every and "most active" not in every


def test_the_overlay_is_red_where_a_pixel_raises_the_answer_and_blue_where_it_lowers_it():
    image = np.zeros((28, 28))
    attributions = np.zeros((28, 28))
    attributions[5, 5], attributions[6, 6] = 2.0, -2.0
    pixels = _overlay(image, attributions)
    assert tuple(pixels[5, 5]) == (214, 39, 40) and tuple(pixels[6, 6]) == (31, 119, 180)
    assert tuple(pixels[0, 0]) == (0, 0, 0)


def test_a_wide_layer_wraps_its_bars_into_rows_that_fit_the_page():
    units = np.arange(1200, dtype=np.float32)  # the widest MLP's first layer
    pixels = _bars(units)
    rows = -(-1200 // GRID_WIDTH)
    assert rows > 1 and pixels.shape[1] == GRID_WIDTH and pixels.shape[0] == rows * 32 + (rows - 1) * 4
    blue = np.all(pixels == (31, 119, 180), axis=2)
    assert blue.sum() == sum(round(32 * u / 1199) for u in units)  # every unit drawn, none lost


def test_committed_embeddings_belong_to_their_model_file_and_are_used_at_once(subset):
    from mnist_core.reading.neighbours import embeddings_file, read_embeddings
    from mnist_core.store import sha256_file

    for name, run in named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT).items():
        digest = sha256_file(run.model_path)
        embeddings = read_embeddings(embeddings_file(run.key), digest, len(subset.labels))
        assert embeddings.shape[0] == 10000 and np.isfinite(embeddings).all(), name
        with pytest.raises(UnsafeFile, match="another model file"):
            read_embeddings(embeddings_file(run.key), "0" * 64, len(subset.labels))


def test_the_search_moves_to_all_training_digits_once_they_are_placed(subset):
    import time

    from mnist_core.reading.neighbours import Search, TrainingDigits, busy

    search = Search(Neighbours(np.eye(10)[subset.labels], subset))
    assert search.current.digits is subset
    everything = TrainingDigits(subset.images[:3000], subset.labels[:3000], subset.indices[:3000], "more")
    busy()  # someone is drawing: nothing is placed until they pause
    search.upgrade(lambda images: np.ones((len(images), 4)), lambda: everything, batch=1000, quiet_s=0.5)
    time.sleep(0.3)
    assert search.upgrading and search.current.digits is subset  # the subset serves meanwhile
    deadline = time.monotonic() + 10
    while search.upgrading and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not search.upgrading and search.current.digits is everything and search.problem is None
    assert (search.placed, search.total) == (3000, 3000)  # how far it got, for the page to say
    failing = Search(Neighbours(np.eye(10)[subset.labels], subset))
    failing.upgrade(lambda images: 1 / 0, lambda: everything, quiet_s=0)
    while failing.upgrading:
        time.sleep(0.05)
    assert "ZeroDivisionError" in failing.problem and failing.current.digits is subset


def test_neighbour_distances_get_the_places_that_tell_them_apart():
    from pages.parts.inside_view import _places

    assert _places([0.031, 0.2]) == 2 and _places([0.0312, 0.0349]) == 3 and _places([0.03121, 0.03124]) == 5
    assert _places([0.5, 0.5]) == 5 and _places([]) == 5
