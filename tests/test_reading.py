"""Honest readings: the size check net of the pen, the not-a-digit check, calibrated
probabilities, and `classify` reading image files as the Draw page reads a canvas."""

import json
import shutil
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


def test_a_phones_photo_is_read_as_the_phone_held_it_exif_orientation_and_multi_picture_jpeg(
        tmp_path, mnist):
    write_images(tmp_path, mnist)
    upright = Image.open(tmp_path / "light_on_dark.png").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 3  # "rotate 180°": the pixels are upside down, the phone says how to show them
    upright.rotate(180).save(tmp_path / "rotated.png", exif=exif)
    original = ink_of_file(tmp_path / "light_on_dark.png")[0]
    assert np.array_equal(ink_of_file(tmp_path / "rotated.png")[0], original)
    upright.save(tmp_path / "upright.jpg", quality=95)
    upright.rotate(180).save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    turned, plain = ink_of_file(tmp_path / "rotated.jpg")[0], ink_of_file(tmp_path / "upright.jpg")[0]
    assert np.abs(turned - plain).mean() < 0.01
    upright.save(tmp_path / "two.mpo", format="MPO", save_all=True, append_images=[upright.rotate(90)])
    assert Image.open(tmp_path / "two.mpo").format == "MPO"
    first, _ = ink_of_file(tmp_path / "two.mpo")
    assert np.abs(first - plain).mean() < 0.01  # the first picture, the photo


def forged_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels and holds none."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_an_image_beyond_pillows_own_limit_gets_our_words_not_pillows(tmp_path):
    (tmp_path / "vast.png").write_bytes(forged_png(30_000, 30_000))
    with pytest.raises(ImageFileError) as raised:
        ink_of_file(tmp_path / "vast.png")
    assert "40,000,000 pixels this reads" in str(raised.value) and "damaged" not in str(raised.value)
    assert "decompression bomb" not in str(raised.value).lower()


@pytest.mark.slow
def test_classify_keeps_memory_flat_however_many_files_it_reads(tmp_path):
    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((400, 400)) * 40).astype(np.uint8)).save(tmp_path / "noise.jpg")
    code = ("import resource, sys; from mnist_core.__main__ import main; "
            "status = main(['classify', '--json', *sys.argv[1:]]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")

    def peak_mb(count: int) -> float:
        import subprocess
        import sys

        done = subprocess.run([sys.executable, "-c", code, *[str(tmp_path / "noise.jpg")] * count],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert len(json.loads(done.stdout)) == count
        return int(done.stderr.strip().splitlines()[-1]) / 1024

    # 100 files: each photo is looked over for digits on paper (~0.1 s), and each 400x400 image
    # kept would add 2.5 MB: 250 MB
    one, many = peak_mb(1), peak_mb(100)
    assert many - one < 60, (one, many)


@pytest.mark.slow
def test_classify_reads_files_like_the_draw_page_and_names_each_bad_one(tmp_path, mnist):
    write_images(tmp_path, mnist)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    odd = tmp_path / "two\nlines.png"
    shutil.copy(tmp_path / "light_on_dark.png", odd)
    files = ["light_on_dark.png", "empty.png", "dark_on_light.jpg", "black_on_transparent.png",
             "text.jpg", "scribble.png", "small.png", "light_on_dark.png", odd.name]
    result = cli("classify", "--json", *[str(tmp_path / name) for name in files])
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("python -m mnist_core classify")]
    assert len(errors) == 2 and "empty.png: the file is empty" in errors[0] and "text.jpg" in errors[1]
    assert "Traceback" not in result.stderr
    found = json.loads(result.stdout)  # exactly one object per argument, in order
    assert [r["file"] for r in found] == [str(tmp_path / name) for name in files]
    assert [("error" in r) for r in found] == [name in ("empty.png", "text.jpg") for name in files]
    assert "the file is empty" in found[1]["error"] and found[0]["models"] == found[7]["models"]
    readings = {Path(r["file"]).name: r for r in found if "error" not in r}
    in_words = cli("classify", str(odd))
    assert in_words.returncode == 0 and len(in_words.stdout.strip().splitlines()) == 1
    assert json.dumps(str(odd)) in in_words.stdout  # a name with a newline is quoted, on one line
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
    unknown = cli("classify", "--models", "no_such_model_at_all", str(tmp_path / "light_on_dark.png"))
    assert unknown.returncode == 2 and "model 'no_such_model_at_all'" in unknown.stderr
    assert "voter" not in unknown.stderr



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


def test_runs_are_calibrated_side_by_side_and_one_whose_probabilities_fail_is_said():
    from mnist_core.suspects import given_labels

    named = named_runs(StoreChain.default(), STANDARD_FINGERPRINT)

    class Unreadable:
        def predictions(self):
            raise UnsafeFile("predictions.npz does not match its sha256 in the manifest")

    runs = {"broken": Unreadable(), **{name: named[name] for name in ("baseline_mlp", "reference_cnn")}}
    temperatures, check, notes = readers_for(runs)
    fitted_alone = {name: calibration.calibrate(named[name].predictions(), given_labels(named[name]))
                    for name in ("baseline_mlp", "reference_cnn")}
    assert temperatures == {name: fitted.temperature for name, fitted in fitted_alone.items()}
    assert notes[0] == ("broken's probabilities are not calibrated: predictions.npz does not match its "
                        "sha256 in the manifest")
    assert check is None and len(notes) == 2  # the check reads improved_cnn, not among these
