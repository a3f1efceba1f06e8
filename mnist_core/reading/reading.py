"""What the models make of one drawing, the same way for the Draw page and `classify`:
the size check, MNIST-style preprocessing, every model's calibrated probabilities and the
not-a-digit check. Image files are read here too, with their polarity decided by the border.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..safe_read import UnsafeFile, read_bytes
from .predict import probabilities_of
from .preprocess import INK_THRESHOLD, MIN_EXTENT, ink, ink_extent, pen_width, to_mnist

MAX_PIXELS = 40_000_000  # an image file with more pixels is refused before it is decoded
MAX_FILE_BYTES = 64 * 2 ** 20
DARK_GROUND = 0.35  # an image whose median is darker than this may be light strokes on dark
WORKING_SIDE = 1000  # larger images are scaled down first: the models see 20x20 of it anyway
BLUE_INK = 0.6  # ink under this share as dark in the blue channel as in red is a blue that the
# channel hides (blue pens 0.23-0.75; black, grey and pencil 0.7-1.1 on the benchmark's photos)
INK_COLOUR_SIDE = 120  # px: a copy this size tells the ink's colour (10 ms, as well as at 250 px)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, as JPEG keeps it
PLAIN_GROUND = 0.04  # a border whose greys (10th to 90th percentile) spread no more is even
# No MNIST digit's ink is more than 2.25 times as wide as tall, net of the pen (60,000 training
# digits): a mark flatter than this is a dash or a line, whatever the models make of it.
FLAT = 3.0


@dataclass(frozen=True)
class Reading:
    extent: float  # how far the drawing reaches, net of the pen (mnist_core.preprocess.ink_extent)
    image28: np.ndarray | None  # None: blank, or too small to read
    probabilities: dict[str, np.ndarray]  # per model; calibrated where a temperature was given
    not_a_digit: bool | None  # None: no not-a-digit check for these models

    @property
    def too_small(self) -> bool:
        return self.image28 is None and self.extent > 0


def read(image, predict, check=None, temperatures: dict[str, float] | None = None) -> Reading:
    """`image`: a canvas (H, W, 4) or any image `preprocess.ink` takes; `predict`: from
    mnist_core.predict.predictor; `check`: a mnist_core.digit_check.DigitCheck for the model whose
    penultimate layer `predict` returns (or None)."""
    strokes = ink(image)  # once: both steps below take it as it is
    extent = ink_extent(strokes)
    image28 = to_mnist(strokes) if extent >= MIN_EXTENT else None
    if image28 is None:
        return Reading(extent, None, {}, None)
    logits, embedding = predict(image28[None])
    verdict = check.not_a_digit(embedding[0]) if check is not None and embedding is not None else None
    if flat(strokes):
        verdict = True
    return Reading(extent, image28, probabilities_of(logits, temperatures), verdict)


def flat(strokes: np.ndarray) -> bool:
    """Whether the ink is a mark much wider than tall (FLAT, net of the pen's width)."""
    inked = strokes >= INK_THRESHOLD
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    pen = pen_width(strokes)
    return cols[-1] - cols[0] + 1 - pen > FLAT * max(rows[-1] - rows[0] + 1 - pen, 1.0)


@dataclass(frozen=True)
class PictureReading:
    polarity: str  # what was taken for ink (reading.ink_of_image)
    found: list  # photo.FoundDigit each, left to right
    readings: list[Reading]  # one per digit found

    def number(self) -> str:
        """The digits read left to right, each the one most models read (the first model listed
        breaks a tie); '?' for a mark that is no digit or too small to read."""
        return "".join(_consensus(r) for r in self.readings)


def _consensus(reading: Reading) -> str:
    if reading.not_a_digit or not reading.probabilities:
        return "?"
    votes = [int(p.argmax()) for p in reading.probabilities.values()]
    return str(max(dict.fromkeys(votes), key=votes.count))


def read_picture(rgba: np.ndarray, predict, check=None,
                 temperatures: dict[str, float] | None = None) -> PictureReading:
    """Every digit in an image (image_of_file's RGBA), each read as `read` reads a drawing."""
    found, polarity = digits_of_image(rgba)
    readings = [read(digit.strokes, predict, check, temperatures) for digit in found]
    return PictureReading(polarity, found, readings)


def embedding_model(check) -> str | None:
    """The model whose penultimate layer the predictor must return for `check` (None: no check)."""
    from .digit_check import MODEL_NAME

    return MODEL_NAME if check is not None else None


class ImageFileError(ValueError):
    """A file that is not an image this can read (says which and why)."""


def image_of_file(path: str | Path) -> np.ndarray:
    """RGBA float32 in [0, 1] from a PNG or JPEG file, turned as its EXIF says the phone was held,
    at most WORKING_SIDE on its larger side. The pixel count is checked before decoding."""
    name = str(path)
    try:
        data = read_bytes(Path(path), MAX_FILE_BYTES, follow_links=True)
    except UnsafeFile as exc:
        raise ImageFileError(f"{name}: {exc}") from None
    except OSError as exc:
        raise ImageFileError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    return image_of_bytes(data, name)


def image_of_bytes(data: bytes, name: str) -> np.ndarray:
    """As image_of_file, for a file's bytes (an upload); `name` is what errors call it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > MAX_FILE_BYTES:
        raise ImageFileError(f"{name}: is larger than the {MAX_FILE_BYTES // 2 ** 20} MB this reads")
    if not data:
        raise ImageFileError(f"{name}: the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            # MPO: the multi-picture JPEG many phone cameras write; its first picture is the photo
            if opened.format not in ("PNG", "JPEG", "MPO"):
                raise ImageFileError(f"{name}: is a {opened.format} image; give a PNG or JPEG file")
            width, height = opened.size
            if width * height > MAX_PIXELS:
                raise ImageFileError(f"{name}: {width}x{height} pixels is more than the "
                                     f"{MAX_PIXELS:,} this reads (scale it down or crop it)")
            if opened.format != "PNG":  # a JPEG decodes at 1/2, 1/4 or 1/8 of its size at once
                shrink = WORKING_SIDE / max(width, height)
                opened.draft(None, (int(width * shrink), int(height * shrink)))
            if max(opened.size) > WORKING_SIDE:
                opened.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)
            return np.asarray(ImageOps.exif_transpose(opened).convert("RGBA"), np.float32) / 255.0
    except ImageFileError:
        raise
    except UnidentifiedImageError:
        raise ImageFileError(f"{name}: is not an image (give a PNG or JPEG file)") from None
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours, caught on opening
        raise ImageFileError(f"{name}: has more than the {MAX_PIXELS:,} pixels this reads "
                             "(scale it down or crop it)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageFileError(f"{name}: is a damaged image ({exc})") from None


def ink_of_image(rgba: np.ndarray) -> tuple[np.ndarray, str, bool]:
    """Ink in [0, 1] (H, W) of the whole image, which polarity was found, and whether it is
    dark ink on light paper (a photo or a scan, whose paper photo.find_digits divides out).

    A border that is mostly transparent means the ink is whatever is opaque. An image that is
    mostly dark with its lightest pixels further from its median than its darkest has light
    strokes on dark, as a canvas draws; anything else is dark ink on paper, however dim the light.
    """
    luminance, alpha = rgba[..., :3].mean(axis=2), rgba[..., 3]
    border = np.concatenate([luminance[0], luminance[-1], luminance[:, 0], luminance[:, -1]])
    border_alpha = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
    if np.mean(border_alpha < 0.5) > 0.5:
        return alpha, "transparent background: the opaque strokes are the ink", False
    background = float(np.median(border[border_alpha >= 0.5]))
    flat = luminance * alpha + background * (1 - alpha)
    step = max(1, max(flat.shape) // 500)  # a sample is as good for these, and far quicker
    darkest, middle, lightest = np.percentile(flat[::step, ::step], [0.5, 50, 99.5])
    if middle < DARK_GROUND and lightest - middle > 2 * (middle - darkest):
        return flat, "light ink on a dark background (as a canvas draws)", False
    return 1.0 - flat, "dark ink on a light background (the paper's light divided out)", True


def ink_of_file(path: str | Path) -> tuple[np.ndarray, str]:
    """Ink in [0, 1] (H, W) of a whole PNG or JPEG file, and which polarity was found."""
    ink, polarity, _ = ink_of_image(image_of_file(path))
    return ink, polarity


def digits_of_image(rgba: np.ndarray) -> tuple[list, str]:
    """The digits to read in an image (photo.FoundDigit each, left to right) and its polarity.
    Dark ink on paper: each digit found on the paper (none on a blank sheet). Otherwise the
    whole image is one drawing, read as the canvas is; so is a plain scan with one digit."""
    from .photo import FoundDigit, find_digits, ink_on_paper

    ink, polarity, on_paper = ink_of_image(rgba)
    whole = [FoundDigit((0, 0, ink.shape[1], ink.shape[0]), ink)]
    if not on_paper:
        return whole, polarity
    ground = plain_ground(1.0 - ink)
    paper = paper_grey(rgba, ink)
    found = find_digits(paper * rgba[..., 3] + (1.0 - rgba[..., 3]), ground)
    if ground is not None and len(found) == 1:  # on white, the very ink read before photos were
        return [FoundDigit(found[0].box, ink if ground == 1.0 else ink_on_paper(1.0 - ink, ground))], polarity
    return found, polarity


def paper_grey(rgba: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The grey to find digits in: mostly the blue channel, which hides most ruled lines (light
    blue) and keeps black and grey inks dark; but blue ink, which it hides too, is found in the
    luma. The ink's colour is judged on a small copy, by how much darker than their paper
    its darkest marks are in each channel (a shadow darkens every channel alike), away from the
    image's border."""
    import cv2

    from .photo import MIN_CONTRAST, ink_on_paper, inner

    step = max(1, max(ink.shape) // INK_COLOUR_SIDE)
    small = cv2.resize(rgba[..., :3], (max(1, ink.shape[1] // step), max(1, ink.shape[0] // step)),
                       interpolation=cv2.INTER_AREA)
    red, blue = (inner(ink_on_paper(np.ascontiguousarray(small[..., c]))) for c in (0, 2))
    marks = red >= max(float(np.percentile(red, 99)), MIN_CONTRAST)
    if marks.any() and blue[marks].mean() < BLUE_INK * red[marks].mean():
        return rgba[..., :3] @ LUMA  # not the red channel alone: a JPEG keeps colour at half size
    return 0.8 * rgba[..., 2] + 0.2 * (1.0 - ink)


def plain_ground(gray: np.ndarray) -> float | None:
    """The ground's grey when it is even all round the image's border (PLAIN_GROUND), as on a
    scan or a drawing made on a computer; None for a photo's unevenly lit paper."""
    band = max(1, int(0.02 * max(gray.shape)))
    border = np.concatenate([gray[:band].ravel(), gray[-band:].ravel(),
                             gray[:, :band].ravel(), gray[:, -band:].ravel()])
    low, middle, high = np.percentile(border, [10, 50, 90])  # a digit may touch the border
    return float(middle) if high - low <= PLAIN_GROUND else None


def readers_for(runs: dict) -> tuple[dict[str, float], object | None, list[str]]:
    """For named runs {name: Run}: each one's temperature (mnist_core.calibration, from its stored
    test probabilities), the not-a-digit check when the improved CNN is among them, and a note
    for each that could not be had."""
    from ..store import sha256_file
    from ..suspects import given_labels
    from . import digit_check
    from .calibration import calibrate

    def temperature(run) -> float:
        return calibrate(run.predictions(), given_labels(run)).temperature

    temperatures, notes, check = {}, [], None
    # Two at a time: NumPy lets go of the GIL in the fit's arithmetic, and a fresh Draw page's
    # first reading waits for these (4 models: 0.40 s against 0.70 s one by one, here).
    with ThreadPoolExecutor(2) as pool:
        fits = {name: pool.submit(temperature, run) for name, run in runs.items()}
    for name, fit in fits.items():
        try:
            temperatures[name] = fit.result()
        except (ValueError, OSError) as exc:
            notes.append(f"{name}'s probabilities are not calibrated: {exc}")
    run = runs.get(digit_check.MODEL_NAME)
    if run is None:
        notes.append(f"no not-a-digit check: it reads {digit_check.MODEL_NAME}'s layers, and that "
                     "model is not among these")
    else:
        try:
            check = digit_check.read(sha256_file(run.model_path))
        except (ValueError, OSError) as exc:
            notes.append(f"no not-a-digit check: {exc}")
    return temperatures, check, notes
