"""Synthetic phone photos of digits written on paper, for measuring how photos are read: MNIST
digits rewritten with a ballpoint, blue ink, a pencil or a marker on white, tinted, lined or
squared paper, under uneven light and a soft shadow, turned, tilted, blurred, noisy and saved
as a phone saves them (JPEG, some with their rotation in EXIF, some as MPO), 300-1200 px or
4000x3000; and things photographed the same way that are no digit (a blank sheet, a printed
letter, a smiley, a dash, a textured surface).

Used by benchmarks/photo_reading.py, by tests, and to fit the not-a-digit check on what the
photo path cuts out of photos (`fitting_photos`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from .digit_check import FIT_SEED, canvas_images
from .neighbours import TrainingDigits
from .preprocess import MIN_EXTENT, ink, ink_extent, to_mnist

PENS = ("ballpoint", "blue ink", "pencil", "marker")
PAPERS = ("white", "tinted", "lined", "squared")
NON_DIGITS = ("blank sheet", "printed letter", "smiley", "dash", "texture")
LETTERS = "ACEFHKMNPRWXY"
FIT_PHOTOS = 2000  # training digits photographed for the not-a-digit check to learn from
FIT_SCANS = 1000  # and scanned coarsely, as another writer's scan may come (8-16 px a digit field)
FRAMED = 0.12  # the writing lies at least this share of the frame from its edges


@dataclass(frozen=True)
class Photo:
    data: bytes  # the file as a phone writes it
    labels: tuple[int, ...]  # the digits written, left to right; () for a non-digit
    kind: str  # "digit", "number" or one of NON_DIGITS
    pen: str
    paper: str
    size: tuple[int, int]  # width, height as shown


def _skeleton(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    return skeletonize(mask)


def written(digit: np.ndarray, height: int, pen_share: float, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 MNIST digit rewritten `height` px tall with a pen `pen_share` of its height wide:
    its strokes' middle line, drawn again with that pen. Float mask (h, w) in [0, 1]."""
    scale = height / 20
    size = int(round(28 * scale))
    big = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR)) > 100
    rows, cols = np.flatnonzero(big.any(axis=1)), np.flatnonzero(big.any(axis=0))
    big = big[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    radius = max(0.6, pen_share * height / 2)
    pad = int(radius) + 3
    middle = _skeleton(np.pad(big, pad))
    aspect = rng.uniform(0.85, 1.15)  # a writer's own slant and width
    shear = rng.uniform(-0.15, 0.15)
    moved = ndimage.affine_transform(middle.astype(np.float32), np.array([[1.0, 0.0], [shear, 1 / aspect]]),
                                     offset=(0, -shear * middle.shape[0] / 2), order=1,
                                     output_shape=(middle.shape[0], int(middle.shape[1] * aspect) + 2 * pad))
    strokes = ndimage.distance_transform_edt(moved < 0.3)
    return np.clip(radius + 0.5 - strokes, 0.0, 1.0).astype(np.float32)


def _pen(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The pen's colour (RGB in [0, 1]) and width as a share of the digit's height."""
    if kind == "ballpoint":
        return np.array([0.12, 0.12, 0.18]) * rng.uniform(0.6, 1.4), rng.uniform(0.025, 0.06)
    if kind == "blue ink":
        return np.array([0.12, 0.2, 0.55]) * rng.uniform(0.8, 1.2), rng.uniform(0.04, 0.09)
    if kind == "pencil":
        return np.full(3, rng.uniform(0.35, 0.55)), rng.uniform(0.025, 0.06)
    return np.full(3, rng.uniform(0.02, 0.12)), rng.uniform(0.12, 0.2)


def _paper(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    colour = np.full(3, rng.uniform(0.85, 0.97))
    if kind != "white":
        colour = colour * np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.8, 0.97)])
    paper = np.ones((height, width, 3)) * colour
    if kind in ("lined", "squared"):
        gap = int(rng.uniform(0.05, 0.09) * height)
        line = np.array([0.55, 0.7, 0.9]) if rng.random() < 0.7 else np.full(3, 0.6)
        thick = max(1, height // 400)
        offset = int(rng.integers(0, gap))
        for y in range(offset, height, gap):
            paper[y:y + thick] = paper[y:y + thick] * 0.4 + line * 0.6 * colour
        if kind == "squared":
            for x in range(offset, width, gap):
                paper[:, x:x + thick] = paper[:, x:x + thick] * 0.4 + line * 0.6 * colour
    return paper


def _light(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Uneven light: a slope across the sheet and, often, a soft shadow over part of it."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    slope = np.cos(angle) * x + np.sin(angle) * y
    light = 1.0 - rng.uniform(0.05, 0.35) * (slope - slope.min()) / max(np.ptp(slope), 1e-6)
    if rng.random() < 0.6:
        edge_angle = rng.uniform(0, 2 * np.pi)
        distance = (np.cos(edge_angle) * (x - rng.uniform(0.2, 0.8))
                    + np.sin(edge_angle) * (y - rng.uniform(0.2, 0.8)))
        softness = rng.uniform(0.03, 0.12)
        depth = rng.uniform(0.2, 0.45)
        light = light * (1.0 - depth / (1.0 + np.exp(-distance / softness)))
    return light[..., None]


def _non_digit(kind: str, height: int, rng: np.random.Generator) -> np.ndarray:
    """A mark that is no digit, as a float mask about `height` px tall."""
    size = height + 20
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    pen = max(2, int(height * rng.uniform(0.04, 0.1)))
    if kind == "printed letter":
        font = ImageFont.load_default(size=int(height * 1.3))
        draw.text((size / 2, size / 2), LETTERS[int(rng.integers(len(LETTERS)))], fill=255, font=font,
                  anchor="mm")
    elif kind == "smiley":
        m, r = size / 2, height / 2
        draw.ellipse((m - r, m - r, m + r, m + r), outline=255, width=pen)
        for side in (-1, 1):
            draw.ellipse((m + side * r * 0.35 - pen, m - r * 0.3 - pen, m + side * r * 0.35 + pen,
                          m - r * 0.3 + pen), fill=255)
        draw.arc((m - r * 0.55, m - r * 0.45, m + r * 0.55, m + r * 0.6), 20, 160, fill=255, width=pen)
    elif kind == "dash":
        m = size / 2
        draw.line((10, m, size - 10, m + rng.uniform(-0.1, 0.1) * height), fill=255,
                  width=max(pen, int(height * 0.12)))
    return np.asarray(image, np.float32) / 255


def _texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A surface with grain and no digit (wood, fabric, a carpet), RGB in [0, 1]."""
    noise = rng.normal(0, 1, (height, width))
    grain = ndimage.gaussian_filter(noise, (rng.uniform(1, 4), rng.uniform(6, 30)))
    grain = (grain - grain.min()) / max(np.ptp(grain), 1e-6)
    base = np.array([rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.6)])
    return base * (0.7 + 0.5 * grain[..., None])


def photograph(digits: list[np.ndarray] | None, rng: np.random.Generator, kind: str = "digit",
               side: int | None = None) -> tuple[bytes, str, str, tuple[int, int]]:
    """A photo's file bytes of `digits` (28x28 uint8 MNIST digits, written in a row) or, with no
    digits, of the non-digit `kind`; `side`: the photo's larger side (default 300-1200 px)."""
    side = side or int(rng.integers(300, 1201))
    ratio = rng.choice([0.75, 1.0, 4 / 3])
    width, height = (side, int(side * ratio)) if ratio < 1 else (int(side / ratio), side)
    pen_kind, paper_kind = PENS[int(rng.integers(len(PENS)))], PAPERS[int(rng.integers(len(PAPERS)))]
    colour, pen_share = _pen(pen_kind, rng)
    tall = int(min(height, width / max(1, len(digits or [0])) * 1.2) * rng.uniform(0.25, 0.55))
    if kind == "texture":
        picture = _texture(height, width, rng)
    else:
        picture = _paper(paper_kind, height, width, rng)
        if digits:
            marks = [written(d, tall, pen_share, rng) for d in digits]
            gap = int(tall * rng.uniform(0.15, 0.4))
            wide = sum(m.shape[1] for m in marks) + gap * (len(marks) - 1)
            ink = np.zeros((max(m.shape[0] for m in marks), wide))
            x = 0
            for mark in marks:
                top = (ink.shape[0] - mark.shape[0]) // 2 + int(rng.integers(-tall // 12, tall // 12 + 1))
                top = min(max(top, 0), ink.shape[0] - mark.shape[0])
                ink[top:top + mark.shape[0], x:x + mark.shape[1]] = np.maximum(
                    ink[top:top + mark.shape[0], x:x + mark.shape[1]], mark)
                x += mark.shape[1] + gap
        elif kind == "blank sheet":
            ink = np.zeros((1, 1))
        else:
            ink = _non_digit(kind, tall, rng)
        ink = ink[:height - 4, :width - 4]
        if pen_kind == "pencil":  # graphite leaves grain
            ink = ink * np.clip(rng.normal(0.85, 0.25, ink.shape), 0.3, 1.0)
        # in view, as a person frames what they photograph: clear of the edges the tilt and
        # turn below bring in (up to a tenth of the frame) where the writing leaves room
        top = _anywhere_within(height, ink.shape[0], rng)
        left = _anywhere_within(width, ink.shape[1], rng)
        alpha = np.zeros((height, width))
        alpha[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
        picture = picture * (1 - alpha[..., None]) + colour * alpha[..., None]
    picture = picture * _light(height, width, rng)
    picture = _camera(picture, rng)
    return _save(picture, rng), pen_kind, paper_kind, (width, height)


def _anywhere_within(space: int, size: int, rng: np.random.Generator) -> int:
    """Where a mark `size` long starts along a side `space` long: at least FRAMED of the side from
    both ends if it fits so, else centred with what room there is."""
    margin = min(int(FRAMED * space), (space - size) // 2)
    return int(rng.integers(max(margin, 2), max(margin, 2) + max(1, space - size - 2 * max(margin, 2))))


def _camera(picture: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """What the phone adds: a few degrees of turn, a perspective tilt, blur and noise."""
    import cv2

    height, width = picture.shape[:2]
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    moved = corners + rng.uniform(-0.05, 0.05, (4, 2)).astype(np.float32) * np.float32([width, height])
    angle = np.radians(rng.uniform(-6, 6))
    centre = np.float32([width / 2, height / 2])
    turn = np.float32([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (moved - centre) @ turn.T + centre
    matrix = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
    table = tuple(float(v) for v in rng.uniform(0.1, 0.6) * np.array([1.0, 0.85, 0.7]))  # beyond the sheet
    picture = cv2.warpPerspective(picture.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=table)
    sigma = rng.uniform(0.3, 1.6) * max(height, width) / 800
    picture = cv2.GaussianBlur(picture, (0, 0), sigma)
    picture = picture + rng.normal(0, rng.uniform(0.005, 0.035), picture.shape)
    return Image.fromarray((np.clip(picture, 0, 1) * 255).astype(np.uint8))


def _save(image: Image.Image, rng: np.random.Generator) -> bytes:
    """JPEG as a phone writes it: sometimes with its pixels turned and EXIF saying how to show
    them, sometimes as a multi-picture (MPO) file."""
    buffer = io.BytesIO()
    quality = int(rng.integers(60, 96))
    way = rng.random()
    if way < 0.3:
        orientation, turn = [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_90),
                             (8, Image.Transpose.ROTATE_270)][int(rng.integers(3))]
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.transpose(turn).save(buffer, "JPEG", quality=quality, exif=exif)
    elif way < 0.4:
        image.save(buffer, "MPO", save_all=True, append_images=[image.resize((160, 120))], quality=quality)
    else:
        image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def photos(x: np.ndarray, y: np.ndarray, count: int, seed: int, side: int | None = None) -> list[Photo]:
    """`count` photos: about 70% of one digit, 15% of a row of 2-4 digits, 15% of non-digits
    (each kind in turn), the digits taken in order from `x`, `y` (MNIST uint8 images, labels)."""
    rng = np.random.default_rng(seed)
    made, taken = [], 0
    for index in range(count):
        roll = rng.random()
        if roll < 0.15:
            kind = NON_DIGITS[index % len(NON_DIGITS)]
            data, pen, paper, size = photograph(None, rng, kind, side)
            made.append(Photo(data, (), kind, pen, paper, size))
            continue
        many = int(rng.integers(2, 5)) if roll < 0.3 else 1
        chosen = [(x[(taken + i) % len(x)], int(y[(taken + i) % len(y)])) for i in range(many)]
        taken += many
        kind = "digit" if many == 1 else "number"
        data, pen, paper, size = photograph([d for d, _ in chosen], rng, kind, side)
        made.append(Photo(data, tuple(label for _, label in chosen), kind, pen, paper, size))
    return made


def coarse_scan(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A PNG of a 28x28 MNIST digit scanned coarsely: dark on white, its field shrunk to 8-16 px,
    then scaled up 4-8 times (blurred, as scikit-learn's 8x8 digits scaled up are)."""
    small = int(rng.integers(8, 17))
    image = Image.fromarray(255 - digit).resize((small, small), Image.Resampling.BOX)
    image = image.resize((small * int(rng.integers(4, 9)),) * 2, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    Image.fromarray(np.pad(np.asarray(image), image.width // 4, constant_values=255)).save(buffer, "PNG")
    return buffer.getvalue()


def fitting_photos(data, subset: TrainingDigits, digits: int = FIT_PHOTOS, per_kind: int = 200,
                   seed: int = FIT_SEED, scans: int = FIT_SCANS) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """28x28 images of training digits outside the subset photographed on paper (one each) and
    scanned coarsely (coarse_scan), and of every mark found on photographed non-digits by kind,
    as the photo path cuts them out."""
    from .reading import digits_of_image, image_of_bytes

    def cut_out(data: bytes) -> list[np.ndarray]:
        found, _ = digits_of_image(image_of_bytes(data, "photo"))
        return [ink(digit.strokes) for digit in found]

    rng = np.random.default_rng(seed + 1)  # not the canvas drawings' draws
    outside = np.setdiff1d(np.arange(len(data.x_train)), subset.indices)
    chosen = rng.choice(outside, digits + scans, replace=False)
    shot = [strokes for i in chosen[:digits] for strokes in cut_out(photograph([data.x_train[i]], rng)[0])]
    shot = shot[:digits] + [s for i in chosen[digits:] for s in cut_out(coarse_scan(data.x_train[i], rng))]
    shot = [shot[k] for k in rng.permutation(len(shot))]  # fit and held each get both kinds
    others = {}
    for kind in NON_DIGITS:
        marks = [m for _ in range(per_kind) for m in cut_out(photograph(None, rng, kind)[0])]
        marks = [m for m in marks if ink_extent(m) >= MIN_EXTENT]
        if marks:
            others[f"photographed {kind}"] = np.stack([to_mnist(m) for m in marks])
    return canvas_images(shot), others
