"""Honest readings: the size check net of the pen, the not-a-digit check, calibrated
probabilities, and `classify` reading image files as the Draw page reads a canvas."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.special import softmax

from mnist_core.catalog import named_runs
from mnist_core.data import STANDARD_FINGERPRINT
from mnist_core.reading import calibration, digit_check
from mnist_core.reading.drawings import non_digit, redrawn_digit, strokes_to_canvas
from mnist_core.reading.preprocess import MIN_EXTENT, ink_extent, pen_width
from mnist_core.reading.reading import ImageFileError, embedding_model, ink_of_file, read, readers_for
from mnist_core.safe_read import UnsafeFile
from mnist_core.store import StoreChain, sha256_file
from tests.test_cli import cli

ZIGZAG = [np.array([[130, 130], [155, 135], [130, 145], [155, 157]])]  # 25x27 px, as the issue drew it


@pytest.mark.parametrize("pen", [8, 20, 40])
def test_the_pen_width_is_measured_and_a_small_blob_is_too_small_with_any_pen(pen):
    line = strokes_to_canvas([np.array([[60, 60], [200, 220]])], pen)
    assert pen_width(line[..., 0] / 255) == pytest.approx(pen, abs=2.5)
    assert ink_extent(strokes_to_canvas(ZIGZAG, pen)) < MIN_EXTENT
    assert ink_extent(strokes_to_canvas([np.array([[140, 140]])], pen)) < 0.02  # a dot reaches nothing
    assert ink_extent(line) == pytest.approx(160 / 280, abs=0.02)  # a long stroke, net of its pen


def test_no_redrawn_test_digit_is_too_small(mnist):
    rng = np.random.default_rng(3)
    extents = [ink_extent(redrawn_digit(mnist.x_test[i], rng)) for i in range(300)]
    assert min(extents) > MIN_EXTENT + 0.03


def test_a_dense_hatching_is_not_mistaken_for_a_thick_pen():
    hatching = strokes_to_canvas([np.array([[30, y], [250, y]]) for y in range(30, 251, 20)], 16)
    assert ink_extent(hatching) > 0.6  # the estimate is capped at the canvas's widest pen


def test_temperature_and_ece_are_measured_on_the_half_they_were_not_fitted_on():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 10000)
    logits = rng.normal(0, 1, (10000, 10))
    logits[np.arange(10000), labels] += 2.0
    # labels uniform, the label's logit N(2, 1), the others N(0, 1): the true posterior is softmax(2z)
    true_probabilities = softmax(2 * logits, axis=1)
    overconfident = softmax(6 * logits, axis=1)  # the same model, three times too sure
    fitted = calibration.calibrate(overconfident, labels)
    assert fitted.temperature == pytest.approx(3.0, rel=0.1)
    assert fitted.before.ece > 0.1 and fitted.after.ece < 0.03
    assert fitted.after.counts.sum() == 5000
    honest = calibration.calibrate(true_probabilities, labels)
    assert honest.temperature == pytest.approx(1.0, rel=0.1) and honest.before.ece < 0.03
    # the measured half does not move the temperature; the fitted half does
    changed = labels.copy()
    changed[1::2] = (changed[1::2] + 1) % 10
    assert calibration.calibrate(overconfident, changed).temperature == fitted.temperature
    changed = labels.copy()
    changed[0::2] = (changed[0::2] + 1) % 10
    assert calibration.calibrate(overconfident, changed).temperature != fitted.temperature


def test_every_named_model_is_calibrated_to_within_one_percent_on_the_held_half():
    named = named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT)
    temperatures, _, notes = readers_for(named)
    assert set(temperatures) == set(named) and not [n for n in notes if "calibrated" in n]
    from mnist_core.suspects import given_labels

    for name, run in named.items():
        fitted = calibration.calibrate(run.predictions(), given_labels(run))
        assert fitted.after.ece <= 0.01, name
        assert temperatures[name] == fitted.temperature


@pytest.fixture(scope="module")
def reader():
    from mnist_core.reading.predict import predictor

    named = named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT)
    temperatures, check, notes = readers_for(named)
    assert check is not None, notes
    models = {name: run.load_model() for name, run in named.items()}
    return predictor(models, embedding_model(check)), check, temperatures


def test_the_committed_check_belongs_to_the_committed_improved_cnn_and_refuses_another():
    run = named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT)[digit_check.MODEL_NAME]
    check = digit_check.read(sha256_file(run.model_path))
    assert check.bank.shape == (10000, 128) and np.isfinite(check.weights).all()
    with pytest.raises(UnsafeFile, match="another improved_cnn model file.*not-a-digit"):
        digit_check.read("0" * 64)


def test_a_damaged_check_file_is_refused(tmp_path):
    run = named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT)[digit_check.MODEL_NAME]
    check = digit_check.read(sha256_file(run.model_path))
    broken = digit_check.DigitCheck(check.model_sha256, check.bank, check.mean, check.scale,
                                    np.full_like(check.weights, np.nan), check.intercept, check.threshold)
    path = digit_check.write(broken, tmp_path / "check.npz")
    with pytest.raises(UnsafeFile, match="not finite"):
        digit_check.read(check.model_sha256, path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UnsafeFile):
        digit_check.read(check.model_sha256, tmp_path / "junk.npz")


def test_the_draw_path_reads_digits_and_says_when_a_drawing_is_not_one(mnist, reader):
    predict, check, temperatures = reader
    rng = np.random.default_rng(11)  # seeds other than the check's fit (1000)
    digits = [read(redrawn_digit(mnist.x_test[i], rng), predict, check, temperatures) for i in range(60)]
    assert sum(r.not_a_digit for r in digits) <= 1
    right = sum(r.probabilities["improved_cnn"].argmax() == mnist.y_test[i] for i, r in enumerate(digits))
    assert right >= 58
    for kind in ("scribble", "hatching", "star"):
        others = [read(non_digit(kind, rng), predict, check, temperatures) for _ in range(12)]
        assert sum(bool(r.not_a_digit) for r in others) >= 9, kind
    small = read(strokes_to_canvas(ZIGZAG, 20), predict, check, temperatures)
    assert small.too_small and small.image28 is None and small.probabilities == {}
    blank = read(np.zeros((280, 280, 4), np.uint8), predict, check, temperatures)
    assert not blank.too_small and blank.image28 is None


def test_the_draw_path_shows_calibrated_probabilities(mnist, reader):
    predict, check, temperatures = reader
    reading = read(mnist.x_test[0] / 255.0, predict, check, temperatures)
    raw, _ = predict(reading.image28[None])
    for name, probabilities in reading.probabilities.items():
        np.testing.assert_allclose(probabilities, softmax(raw[name][0] / temperatures[name]), rtol=1e-5)
        assert probabilities.sum() == pytest.approx(1.0)


def write_images(folder, mnist):
    rng = np.random.default_rng(5)
    canvas = redrawn_digit(mnist.x_test[0], rng)  # a 7
    Image.fromarray(canvas).save(folder / "light_on_dark.png")
    Image.fromarray(255 - canvas[..., 0]).resize((900, 700)).save(folder / "dark_on_light.jpg", quality=90)
    transparent = np.zeros((280, 280, 4), np.uint8)
    transparent[..., 3] = canvas[..., 0]
    Image.fromarray(transparent).save(folder / "black_on_transparent.png")
    Image.fromarray(non_digit("scribble", np.random.default_rng(12))).save(folder / "scribble.png")
    Image.fromarray(strokes_to_canvas(ZIGZAG, 20)).save(folder / "small.png")


def test_image_files_are_read_whichever_their_polarity(tmp_path, mnist):
    write_images(tmp_path, mnist)
    light, how = ink_of_file(tmp_path / "light_on_dark.png")
    assert "light ink on a dark background" in how and light[0, 0] == 0
    dark, how = ink_of_file(tmp_path / "dark_on_light.jpg")
    assert "dark ink on a light background" in how and dark[0, 0] < 0.05
    clear, how = ink_of_file(tmp_path / "black_on_transparent.png")
    assert "transparent" in how and clear.max() > 0.95 and clear[0, 0] == 0


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello"), "is not an image"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "damaged|not an image"),
    (lambda p: Image.new("L", (40, 40)).save(p, format="GIF"), "GIF"),
    (lambda p: p.mkdir(), "folder"),
    (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
])
def test_a_bad_image_file_is_one_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageFileError, match=message):
        ink_of_file(path)


def test_a_huge_image_is_refused_before_it_is_decoded(tmp_path):
    Image.new("1", (9000, 9000)).save(tmp_path / "huge.png")  # 81 million pixels, a small file
    started = time.perf_counter()
    with pytest.raises(ImageFileError, match="81,000,000|9000x9000"):
        ink_of_file(tmp_path / "huge.png")
    assert time.perf_counter() - started < 2


@pytest.mark.slow
def test_classify_reads_files_like_the_draw_page_and_names_each_bad_one(tmp_path, mnist):
    write_images(tmp_path, mnist)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    files = ["light_on_dark.png", "empty.png", "dark_on_light.jpg", "black_on_transparent.png",
             "text.jpg", "scribble.png", "small.png"]
    result = cli("classify", "--json", *[str(tmp_path / name) for name in files])
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("python -m mnist_core classify")]
    assert len(errors) == 2 and "empty.png: the file is empty" in errors[0] and "text.jpg" in errors[1]
    assert "Traceback" not in result.stderr
    readings = {Path(r["file"]).name: r for r in json.loads(result.stdout)}
    assert list(readings) == [name for name in files if name not in ("empty.png", "text.jpg")]
    for name in ("light_on_dark.png", "dark_on_light.jpg", "black_on_transparent.png"):
        reading = readings[name]
        assert set(reading) >= {"file", "not_a_digit", "too_small", "models"}
        assert reading["not_a_digit"] is False and reading["too_small"] is False
        assert {m["digit"] for m in reading["models"].values()} == {7}, reading
        assert set(reading["models"]) == {"baseline_mlp", "best_width_mlp", "reference_cnn", "improved_cnn"}
        assert all(0 < m["probability"] <= 1 for m in reading["models"].values())
    assert readings["scribble.png"]["not_a_digit"] is True
    assert readings["small.png"]["too_small"] is True and readings["small.png"]["models"] == {}


@pytest.mark.slow
def test_classify_with_chosen_models_and_in_words(tmp_path, mnist):
    write_images(tmp_path, mnist)
    result = cli("classify", "--models", "reference_cnn", str(tmp_path / "light_on_dark.png"))
    assert result.returncode == 0, result.stderr
    assert "reference_cnn 7" in result.stdout and "improved_cnn" not in result.stdout
    assert "no not-a-digit check" in result.stderr  # said, since its model is not among these
    missing = cli("classify", str(tmp_path / "nowhere.png"))
    assert missing.returncode == 2 and "nowhere.png: cannot be read" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1



def test_fitting_the_check_sets_its_threshold_on_held_digits():
    rng = np.random.default_rng(0)
    bank = rng.normal(0, 1, (200, 16))
    digits, held = bank[:100] + rng.normal(0, 0.1, (100, 16)), bank[100:] + rng.normal(0, 0.1, (100, 16))
    others = rng.normal(0, 1, (300, 16)) * 3 + 5
    check = digit_check.fit_embedded("f" * 64, bank, digits, others, held)
    assert np.mean(check.scores(held) > check.threshold) <= 0.01
    assert np.mean(check.scores(others) > check.threshold) > 0.95
    assert not check.not_a_digit(held[0]) and check.not_a_digit(others[0])


def test_refitting_the_check_without_mnist_is_one_line(tmp_path):
    result = cli("data", "not-a-digit", env={"MNIST_PATH": str(tmp_path / "none.npz")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "MNIST" in result.stderr
