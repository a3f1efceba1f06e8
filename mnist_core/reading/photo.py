"""Digits in a photo of paper: the paper's light divided out, the ink found by a threshold chosen
for each image, specks, ruled lines and the sheet's edges dropped, each digit cut out (left to
right when there are several) as clean strokes for the MNIST preprocessing the canvas uses.

OpenCV does the image work (docs/architecture.md says why not scikit-image: the same steps took
several times longer on a phone-size photo in benchmarks/photo_reading.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .preprocess import pen_width

PAPER_SIDE = 250  # the paper's light is estimated on an image this size: it varies slowly
PAPER_KERNEL = 4  # from what is darker than the paper and narrower than 1/4 of the image
MIN_CONTRAST = 0.12  # ink at least this much darker than its paper (a faint pencil is ~0.25)
MIN_DIGIT = 0.04  # a digit is at least this share of the image's larger side tall (and 12 px)
MIN_INK_SHARE = 0.1  # and has at least this share of the most inked digit's ink (not a few dots)
ROW_HEIGHT = 0.3  # in a row, a digit is at least this share of its tallest one (a flat 0 is 0.4)
MAX_DIGITS = 12  # more digit-sized marks than this is writing or texture, not a number
LINE_SPAN = 0.3  # a straight line inked over this share of the image and spread
RULED_SPREAD = 0.7  # over this share of it is the paper's ruling
RULE_HALF_WIDTH = 3  # a ruled line is at most 7 px thick on the image read
RULE_TILT = 0.25  # radians: a photo's turn and tilt slant a sheet's ruling by up to about 12°
RULING_DARKER = 1.8  # ink this many times as dark as the ruling's, on a line, is a pen's
MAX_LINES = 200  # the most inked lines looked at in each direction (a ruling has tens)
EDGE_BAND = 0.08  # marks touching the border and mostly within this share of it are the sheet's edge
THIN_STROKE = 0.1  # MNIST's strokes are 0.10-0.21 of a digit's larger side (median 0.14)


@dataclass(frozen=True)
class FoundDigit:
    box: tuple[int, int, int, int]  # left, top, width, height in the image as read
    strokes: np.ndarray  # (height, width) float32 in [0, 1]: this digit's ink alone


def ink_on_paper(gray: np.ndarray, paper: float | None = None) -> np.ndarray:
    """Ink in [0, 1] from `gray` (H, W) float32 in [0, 1], dark ink on light paper: each pixel's
    darkness relative to the paper around it, so uneven light, a soft shadow and tinted paper
    are divided out. `paper`: the paper's one grey, when it is known to be even (a scan)."""
    import cv2

    if paper is not None:
        return np.clip(1.0 - gray / max(paper, 1 / 255), 0.0, 1.0).astype(np.float32)
    height, width = gray.shape
    step = max(1, max(height, width) // PAPER_SIDE)
    small = cv2.resize(gray, (max(1, width // step), max(1, height // step)), interpolation=cv2.INTER_AREA)
    size = max(3, max(small.shape) // PAPER_KERNEL) | 1  # wider than any stroke
    # a closing fills in what is darker and narrower than `size` (the strokes) with the paper
    # around it, and keeps the edges of what is wider (a shadow's, even a sharp one)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, disc)
    paper = cv2.GaussianBlur(paper, (0, 0), 1.0)
    paper = cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(1.0 - gray / np.maximum(paper, 1 / 255), 0.0, 1.0).astype(np.float32)


def inner(image: np.ndarray) -> np.ndarray:
    """`image` without a band of EDGE_BAND of its larger side along each border, where a photo
    shows what lies beyond the sheet; all of it if nothing would be left."""
    band = int(EDGE_BAND * max(image.shape[:2]))
    kept = image[band:image.shape[0] - band, band:image.shape[1] - band]
    return kept if kept.size else image


def ink_mask(ink: np.ndarray) -> np.ndarray:
    """Which pixels are ink: a threshold chosen for this image (Otsu's, but never within the
    paper's own noise nor below MIN_CONTRAST), extended by hysteresis to the fainter pixels
    joined to them, so a pencil's uneven line stays whole."""
    import cv2

    sample = ink[::_stride(ink), ::_stride(ink)]  # the paper's level and noise need no more
    median = float(np.median(sample))
    noise = 1.4826 * float(np.median(np.abs(sample - median)))
    # what lies beyond the sheet's edges must not set it
    otsu, _ = cv2.threshold((inner(ink) * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    high = max(otsu / 255, MIN_CONTRAST, median + 8 * noise)
    low = max(high / 2, median + 4 * noise)
    faint = ink >= low
    faint &= ~ruling(faint, ink)
    count, labels = cv2.connectedComponents(faint.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[np.unique(labels[(ink >= high) & faint])] = True
    keep[0] = False
    return keep[labels]


def _stride(image: np.ndarray) -> int:
    """A step that samples an image at about PAPER_SIDE points along its larger side."""
    return max(1, max(image.shape) // PAPER_SIDE)


def ruling(faint: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The pixels of straight thin lines that run nearly level or upright across the image (a
    lined or squared sheet's ruling, a sheet's edge), found by a Hough transform of the faint
    ink. A line counts where it is inked and the pixels a few beside it are not (a stroke
    crossing it is inked there too, and keeps its ink); it must count over LINE_SPAN of the
    image, spread over RULED_SPREAD of it (a tall 1 or a row of digits does not). Ink much darker
    than the ruling's own (RULING_DARKER) is kept where it lies on a line: a pen's stroke along it."""
    import cv2

    height, width = faint.shape
    bands = {True: np.zeros(faint.shape, np.uint8), False: np.zeros(faint.shape, np.uint8)}
    thin = np.zeros(faint.shape, bool)
    on_lines = []
    points = faint.astype(np.uint8)
    for start, stop, level in ((np.pi / 2 - RULE_TILT, np.pi / 2 + RULE_TILT, True),
                               (0.0, RULE_TILT, False), (np.pi - RULE_TILT, np.pi, False)):
        across = width if level else height
        lines = cv2.HoughLines(points, 1, np.pi / 720, int(LINE_SPAN * across),
                               min_theta=start, max_theta=stop)
        kept: list[tuple[float, float]] = []
        for rho, theta in ([] if lines is None else lines.reshape(-1, 2)[:MAX_LINES]):
            if any(abs(rho - r) < 4 and abs(theta - t) < 0.02 for r, t in kept):
                continue  # the same line again, a pixel over
            rows, cols = _thin_along(faint, rho, theta)
            along = cols if level else rows
            if along.size >= LINE_SPAN * across and np.ptp(along) >= RULED_SPREAD * across:
                kept.append((rho, theta))
                on_lines.append(ink[rows, cols])
                for shift in range(-RULE_HALF_WIDTH, RULE_HALF_WIDTH + 1):
                    if level:
                        thin[np.clip(rows + shift, 0, height - 1), cols] = True
                    else:
                        thin[rows, np.clip(cols + shift, 0, width - 1)] = True
                a, b, far = np.cos(theta), np.sin(theta), 2 * (height + width)
                x0, y0 = a * rho, b * rho
                cv2.line(bands[level], (int(x0 - far * b), int(y0 + far * a)),
                         (int(x0 + far * b), int(y0 - far * a)), 1, 2 * RULE_HALF_WIDTH + 3)
    if not on_lines:
        return thin
    lines = thin | (bands[True] & bands[False]).astype(bool)  # a squared sheet's crossings too
    return lines & (ink <= RULING_DARKER * float(np.median(np.concatenate(on_lines))))


def _thin_along(faint: np.ndarray, rho: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) along the line (rho, theta) where `faint` is inked on the line (or a pixel
    off it: a drawn line is not perfectly straight) and not RULE_HALF_WIDTH + 2 pixels to
    either side of it."""
    height, width = faint.shape
    a, b = np.cos(theta), np.sin(theta)
    away = RULE_HALF_WIDTH + 2
    if abs(b) > abs(a):  # level: one point per column, its sides above and below
        cols = np.arange(width)
        rows = np.rint((rho - cols * a) / b).astype(int)
        inside = (rows >= away) & (rows < height - away)
        rows, cols = rows[inside], cols[inside]
        on = faint[rows - 1, cols] | faint[rows, cols] | faint[rows + 1, cols]  # a pixel off: a line
        thin = on & ~faint[rows - away, cols] & ~faint[rows + away, cols]
    else:
        rows = np.arange(height)
        cols = np.rint((rho - rows * b) / a).astype(int)
        inside = (cols >= away) & (cols < width - away)
        rows, cols = rows[inside], cols[inside]
        on = faint[rows, cols - 1] | faint[rows, cols] | faint[rows, cols + 1]
        thin = on & ~faint[rows, cols - away] & ~faint[rows, cols + away]
    return rows[thin], cols[thin]


def find_digits(gray: np.ndarray, paper: float | None = None) -> list[FoundDigit]:
    """The digits written on the paper in `gray` (H, W) float32 in [0, 1], left to right;
    `paper` as ink_on_paper takes it."""
    import cv2

    height, width = gray.shape
    ink = ink_on_paper(gray, paper)
    mask = ink_mask(ink)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    side = max(height, width)
    marks = []
    for label in range(1, count):
        left, top, w, h, area = (int(v) for v in stats[label])
        piece = labels[top:top + h, left:left + w] == label
        thin = area < 1.2 * max(w, h)  # under a pixel and a bit wide: a scratch or an edge's line
        if thin or max(w, h) < max(3, 0.01 * side) or _sheet_edge(piece, left, top, gray.shape):
            continue
        marks.append([left, top, left + w, top + h, [label]])
    groups = _group(marks)
    if len(groups) <= 1:  # one mark, whatever its shape (a dash is read, and called no digit)
        digits = [g for g in groups if max(g[3] - g[1], g[2] - g[0]) >= max(12, MIN_DIGIT * side)]
    else:  # digits in a row are about as tall as one another; specks and flat marks are not
        tallest = max(g[3] - g[1] for g in groups)
        inked = {id(g): int(stats[g[4], cv2.CC_STAT_AREA].sum()) for g in groups}
        most = max(inked.values())
        least = max(12, ROW_HEIGHT * tallest)
        digits = [g for g in groups if g[3] - g[1] >= least and inked[id(g)] >= MIN_INK_SHARE * most]
        if tallest < MIN_DIGIT * side:  # the whole row too small to be digits
            digits = []
    if len(digits) > MAX_DIGITS:
        return []
    found = []
    for left, top, right, bottom, parts in sorted(digits):
        alone = np.isin(labels[top:bottom, left:right], parts)
        strokes = _strokes(alone, ink[top:bottom, left:right])
        found.append(FoundDigit((left, top, right - left, bottom - top), strokes))
    return found


def _sheet_edge(piece: np.ndarray, left: int, top: int, shape: tuple[int, int]) -> bool:
    """What lies beyond the sheet, or its edge: a mark that lies along the image's border (all in
    a band along one side and drawn out along it, or touching the border and mostly in that band,
    unless small and about as wide as tall), that touches it and lies mostly along the border
    itself (a corner of the sheet), or that touches it and covers a fifth of the image."""
    height, width = shape
    band = EDGE_BAND * max(height, width)
    bottom, right = top + piece.shape[0], left + piece.shape[1]
    h, w = piece.shape
    if (left < band and right < band or right > width - band and left > width - band) and h > 3 * w:
        return True
    if (top < band and bottom < band or bottom > height - band and top > height - band) and w > 3 * h:
        return True
    if min(left, top, width - right, height - bottom) > 0.02 * max(height, width):
        return False
    if np.count_nonzero(piece) > 0.2 * height * width:
        return True
    rows, cols = np.nonzero(piece)
    rows, cols = rows + top, cols + left

    def within(reach: float) -> float:
        return np.mean((rows < reach) | (rows >= height - reach) | (cols < reach) | (cols >= width - reach))

    if within(0.02 * max(height, width)) > 0.5:
        return True  # mostly along the border itself: the sheet's edge, however short
    if max(h, w) < min(2 * min(h, w), 2 * band):
        return False  # a digit near the border: small and about as wide as tall
    return within(band) > 0.8


def _group(marks: list[list]) -> list[list]:
    """Marks joined into digits: those stacked above one another (a 5's bar, a 4 in two strokes)
    or nearly touching (a pencil's broken line)."""
    groups = [m[:4] + [list(m[4])] for m in marks]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = groups[i], groups[j]
                overlap = min(a[2], b[2]) - max(a[0], b[0])
                narrower = min(a[2] - a[0], b[2] - b[0])
                gap_x = max(a[0], b[0]) - min(a[2], b[2])
                gap_y = max(a[1], b[1]) - min(a[3], b[3])
                tall = max(a[3] - a[1], b[3] - b[1])
                if overlap >= 0.5 * narrower or max(gap_x, gap_y) < 0.06 * tall:
                    groups[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]),
                                 a[4] + b[4]]
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def _strokes(alone: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """A digit's ink as the preprocessing takes it: its own marks' ink (a pixel around them too,
    for their soft edges) scaled so its strokes reach 1, as a scan's do, and thickened when the
    pen was thinner than MNIST's writers' (a ballpoint on a large digit)."""
    import cv2
    from scipy import ndimage

    side = max(alone.shape)
    strokes = np.where(ndimage.binary_dilation(alone, ), ink, 0.0)
    strokes = np.clip(strokes / max(float(np.percentile(ink[alone], 90)), 1e-6), 0.0, 1.0)
    width = pen_width(alone.astype(np.float32))
    radius = (THIN_STROKE * side - width) / 2
    if radius >= 0.5:
        strokes = np.pad(strokes, int(radius) + 1)
        strokes = cv2.dilate(strokes, _disk(radius).astype(np.uint8))
    return strokes.astype(np.float32)


def _disk(radius: float) -> np.ndarray:
    reach = int(radius)
    y, x = np.ogrid[-reach:reach + 1, -reach:reach + 1]
    return x * x + y * y <= radius * radius
