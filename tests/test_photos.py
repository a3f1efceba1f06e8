"""Photos of digits written on paper (mnist_core.reading.photo): each digit found, cut out and read
left to right; what was read before photos (the canvas, clean scans, transparent PNGs) unchanged."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from mnist_core.catalog import named_runs
from mnist_core.data import STANDARD_FINGERPRINT
from mnist_core.reading import runtime
from mnist_core.reading.drawings import redrawn_digit
from mnist_core.reading.photographs import photograph
from mnist_core.reading.reading import (
    LUMA,
    digits_of_image,
    embedding_model,
    image_of_bytes,
    ink_of_image,
    paper_grey,
    read,
    read_picture,
    readers_for,
)
from mnist_core.store import StoreChain
from tests.test_cli import cli


@pytest.fixture(scope="module")
def readers():
    """(predict, check, temperatures) of the four committed named models, as classify has them."""
    stores = StoreChain.default()
    runs = named_runs(stores, STANDARD_FINGERPRINT)
    temperatures, check, _ = readers_for(runs)
    return runtime.predictor(runs, stores, embedding_model(check)), check, temperatures


def digits_of(mnist, number: str) -> list[np.ndarray]:
    """MNIST test images of `number`'s digits, a different writer's for each repeated digit."""
    seen: dict[str, int] = {}
    chosen = []
    for digit in number:
        chosen.append(mnist.x_test[np.flatnonzero(mnist.y_test == int(digit))[seen.get(digit, 0)]])
        seen[digit] = seen.get(digit, 0) + 1
    return chosen


def photo_file(folder, mnist, number: str | None, seed: int, kind: str = "digit", side: int = 800) -> str:
    """A phone photo of `number` written on paper (or of the non-digit `kind`), saved under the
    name its format takes; its path."""
    digits = digits_of(mnist, number) if number else None
    data, *_ = photograph(digits, np.random.default_rng(seed), kind if number is None else
                          "digit" if len(number) == 1 else "number", side)
    suffix = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg"}[Image.open(io.BytesIO(data)).format]
    path = folder / f"{number or kind.replace(' ', '_')}-{seed}.{suffix}"
    path.write_bytes(data)
    return str(path)


def picture_of(path: str, readers):
    return read_picture(image_of_bytes(open(path, "rb").read(), path), *readers)


@pytest.mark.parametrize("seed", range(6))  # ballpoint, blue ink, pencil, marker; plain, lined, squared
def test_a_photo_of_a_7_on_paper_is_found_and_read(tmp_path, mnist, readers, seed):
    picture = picture_of(photo_file(tmp_path, mnist, "7", seed), readers)
    assert picture.number() == "7" and "dark ink on a light background" in picture.polarity
    left, top, width, height = picture.found[0].box
    assert 0 <= left and 0 <= top and 20 < height and 5 < width
    reading = picture.readings[0]
    assert not reading.not_a_digit and int(reading.probabilities["improved_cnn"].argmax()) == 7


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_row_of_digits_is_read_left_to_right_as_a_number(tmp_path, mnist, readers, seed):
    picture = picture_of(photo_file(tmp_path, mnist, "2024", seed), readers)
    assert picture.number() == "2024"
    lefts = [digit.box[0] for digit in picture.found]
    assert lefts == sorted(lefts)


# 400 px photos each read as more or fewer digits before: blue ink (lined, squared, tinted paper),
# a ballpoint's strokes along a ruled line, the sheet's corner taken for a digit
@pytest.mark.parametrize("number, seed", [("2024", 22), ("2024", 29), ("2024", 33), ("2024", 113),
                                          ("309", 24), ("309", 38)])
def test_rows_in_blue_ink_or_on_ruled_paper_are_found_whole(tmp_path, mnist, readers, number, seed):
    assert picture_of(photo_file(tmp_path, mnist, number, seed, side=400), readers).number() == number


def test_blue_ink_is_found_in_the_luma_other_inks_in_the_blue_channel():
    paper = np.full((300, 400, 4), 0.9, np.float32)
    paper[..., 3] = 1.0
    for ink, luma in (((0.1, 0.17, 0.5), True), ((0.1, 0.1, 0.15), False), ((0.45, 0.45, 0.45), False)):
        image = paper.copy()
        image[100:200, 150:156, :3] = ink  # a stroke
        image[100:106, 150:250, :3] = ink
        grey = paper_grey(image, 1.0 - image[..., :3].mean(axis=2))
        assert np.allclose(grey[150, 153], np.dot(ink, LUMA) if luma else 0.8 * ink[2] + 0.2 * np.mean(ink))


def test_a_sheets_corner_is_no_digit_and_a_flat_0_in_a_row_is_one(mnist):
    from mnist_core.reading.photo import find_digits

    gray = np.full((600, 800), 0.9, np.float32)
    two, zero = digits_of(mnist, "20")
    gray[200:312, 200:312] -= 0.7 * np.asarray(Image.fromarray(two).resize((112, 112))) / 255
    flat = np.asarray(Image.fromarray(zero).resize((112, 39))) / 255  # a third of the 2's height
    gray[260:299, 330:442] -= 0.7 * flat
    gray[538:598, 0:3] = gray[595:598, 0:50] = 0.3  # the table beyond a sheet's corner
    lefts = [digit.box[0] for digit in find_digits(gray)]
    assert len(lefts) == 2 and 200 <= lefts[0] < 312 <= lefts[1] < 442, lefts


def test_a_photo_of_a_blank_sheet_has_no_digit_and_a_dash_is_no_digit(tmp_path, mnist, readers):
    assert picture_of(photo_file(tmp_path, mnist, None, 4, "blank sheet"), readers).readings == []
    dash = picture_of(photo_file(tmp_path, mnist, None, 5, "dash"), readers)
    assert dash.readings and all(r.not_a_digit or r.image28 is None for r in dash.readings)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_canvas_a_clean_scan_and_a_transparent_png_read_exactly_as_before_photos(mnist, readers):
    canvas = redrawn_digit(mnist.x_test[0], np.random.default_rng(5))  # a 7, light on dark
    transparent = np.zeros((280, 280, 4), np.uint8)
    transparent[..., 3] = canvas[..., 0]
    for image in (canvas, 255 - canvas[..., 0], transparent):
        rgba = image_of_bytes(png(image), "drawing.png")
        ink, _, _ = ink_of_image(rgba)  # the whole image's ink: what classify read before photos
        found, _ = digits_of_image(rgba)
        assert len(found) == 1 and np.array_equal(found[0].strokes, ink)
        before, now = read(ink, *readers), read_picture(rgba, *readers).readings[0]
        assert np.array_equal(before.image28, now.image28)
        assert all(np.array_equal(p, now.probabilities[n]) for n, p in before.probabilities.items())
    # the Draw page reads its canvas's RGBA as it is, and a file of it reads the same
    assert np.array_equal(read(canvas, *readers).image28,
                          read_picture(image_of_bytes(png(canvas), "c.png"), *readers).readings[0].image28)


@pytest.mark.slow
def test_classify_reports_a_number_with_each_digits_box_and_one_digit_as_before(tmp_path, mnist):
    row, seven, blank = (photo_file(tmp_path, mnist, "2024", 1), photo_file(tmp_path, mnist, "7", 3),
                         photo_file(tmp_path, mnist, None, 4, "blank sheet"))
    result = cli("classify", "--json", row, seven, blank)
    assert result.returncode == 0, result.stderr
    number, one, none = json.loads(result.stdout)
    assert number["number"] == "2024" and len(number["digits"]) == 4
    for digit, expected in zip(number["digits"], "2024"):
        assert len(digit["box"]) == 4 and digit["not_a_digit"] is False
        assert digit["models"]["improved_cnn"]["digit"] == int(expected)
    assert "digits" not in one and "number" not in one
    assert {m["digit"] for m in one["models"].values()} == {7}
    assert none["models"] == {} and "digits" not in none
    in_words = cli("classify", row, blank)
    lines = in_words.stdout.strip().splitlines()
    assert "the number 2024 (digit 1: " in lines[0] and "no digit found" in lines[1]


def test_the_draw_pages_upload_limit_is_the_files_classify_reads():
    import tomllib
    from pathlib import Path

    from mnist_core.reading.reading import MAX_FILE_BYTES

    config = tomllib.loads((Path(__file__).parent.parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2 ** 20 == MAX_FILE_BYTES


def test_a_phone_size_jpeg_is_shrunk_then_turned_as_its_exif_says(mnist):
    """The working-size decode (draft, thumbnail) comes before the EXIF turn: it must not lose it."""
    canvas = redrawn_digit(mnist.x_test[0], np.random.default_rng(5))
    upright = Image.fromarray(255 - canvas[..., 0]).resize((4000, 3000)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to show": the pixels lie on their side
    turned, plain = io.BytesIO(), io.BytesIO()
    upright.rotate(90, expand=True).save(turned, "JPEG", quality=90, exif=exif)
    upright.save(plain, "JPEG", quality=90)
    shown, expected = image_of_bytes(turned.getvalue(), "t.jpg"), image_of_bytes(plain.getvalue(), "p.jpg")
    assert shown.shape == expected.shape == (750, 1000, 4)
    assert np.abs(shown - expected).mean() < 0.01

