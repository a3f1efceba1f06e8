"""Turn a canvas drawing into an MNIST-style 28x28 image, the way MNIST itself was made.

MNIST digits were size-normalised to fit a 20x20 box (keeping their aspect ratio, with
anti-aliasing) and then centred by centre of mass in a 28x28 field. A drawing has to go
through the same steps or the models see something they were never trained on.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

INK_THRESHOLD = 0.1  # below this a pixel counts as background (canvas noise, anti-aliased halo)
MIN_INK_PIXELS = 4  # fewer inked pixels than this is treated as an empty canvas
# A drawing that reaches less than this share of the canvas's side (net of the pen's width) is a
# tap or a small blob, not a digit: benchmarks/drawing_robustness.py prints how far redrawn
# MNIST test digits reach.
MIN_EXTENT = 0.15
MAX_PEN = 0.15  # the canvas's widest pen is 40 px of 280
BOX = 20
SIZE = 28
CENTRE = 14.0  # where MNIST's centres of mass sit (mean over the training set: 14.0, 14.0)


class PreprocessError(ValueError):
    """The input is not an image at all (wrong number of dimensions or not numbers)."""


def ink(image) -> np.ndarray:
    """Ink intensity in [0, 1], (H, W), for a grayscale, RGB or RGBA array of any numeric dtype.

    White strokes on black (or on transparency) are ink; NaN counts as no ink.
    """
    array = np.asarray(image)
    if array.dtype == bool:
        array = array.astype(np.float32)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise PreprocessError(f"canvas image must hold numbers, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] in (1, 3, 4) and array.shape[0] > 0 and array.shape[1] > 0:
        pass
    elif array.ndim == 2 and array.size > 0:
        array = array[:, :, None]
    else:
        raise PreprocessError(
            f"canvas image must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        scale = 255.0 if values.max(initial=0) > 1.0 else 1.0
        values = np.clip(values / scale, 0.0, 1.0).astype(np.float32)
    else:  # integers, as a canvas sends them: no NaN to handle, float32 is exact enough
        values = np.clip(array.astype(np.float32) / 255.0, 0.0, 1.0)
    channels = values.shape[2]
    if channels == 1:
        return values[:, :, 0]
    luminance = values[:, :, :3].mean(axis=2)
    alpha = values[:, :, 3] if channels == 4 else 1.0
    return (luminance * alpha).astype(np.float32)


def to_mnist(image) -> np.ndarray | None:
    """(28, 28) float32 in [0, 1] like an MNIST digit, or None when there is no digit to read."""
    strokes = ink(image)
    strokes = np.where(strokes >= INK_THRESHOLD, strokes, 0.0)
    if np.count_nonzero(strokes) < MIN_INK_PIXELS:
        return None
    rows = np.flatnonzero(strokes.any(axis=1))
    cols = np.flatnonzero(strokes.any(axis=0))
    digit = strokes[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = digit.shape
    factor = BOX / max(height, width)
    new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    # LANCZOS on a float image: anti-aliased like MNIST's own downscaling
    small = np.asarray(Image.fromarray(digit.astype(np.float32), mode="F")
                       .resize(new_size, Image.Resampling.LANCZOS))
    small = np.clip(small, 0.0, None)
    field = np.zeros((SIZE, SIZE), np.float32)
    top, left = (SIZE - small.shape[0]) // 2, (SIZE - small.shape[1]) // 2
    field[top:top + small.shape[0], left:left + small.shape[1]] = small
    centre = np.array(ndimage.center_of_mass(field))
    field = ndimage.shift(field, CENTRE - centre, order=1, mode="constant", cval=0.0)
    peak = field.max()
    if not np.isfinite(peak) or peak <= 0:
        return None
    return np.clip(field / peak, 0.0, 1.0).astype(np.float32)


def pen_width(strokes: np.ndarray) -> float:
    """The width of the pen that drew `strokes` (ink in [0, 1], (H, W)), in pixels: twice the
    median distance from the strokes' middle lines (the distance transform's ridge) to their
    edges. Capped at MAX_PEN of the larger side, the widest pen the canvas offers."""
    mask = strokes > 0.5
    if not mask.any():
        return 0.0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    side = max(mask.shape)
    mask = np.pad(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 1)  # the ink alone: less to transform
    distance = ndimage.distance_transform_edt(mask)
    ridge = (distance >= ndimage.maximum_filter(distance, 3)) & mask
    return float(min(2 * np.median(distance[ridge]), MAX_PEN * side))


def ink_extent(image) -> float:
    """How far the drawing reaches, net of the pen's width: the larger side of the ink's bounding
    box minus the pen's width, as a share of the image's larger side (0 if blank). A dot of any
    pen reaches 0; a digit drawn with a thick pen is measured as with a thin one."""
    strokes = ink(image)
    inked = strokes > INK_THRESHOLD
    if not inked.any():
        return 0.0
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    return max(0.0, side - pen_width(strokes)) / max(inked.shape)
