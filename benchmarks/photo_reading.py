"""How well photos of digits written on paper are read, and how fast.

    python benchmarks/photo_reading.py [--photos 600] [--phone 12] [--writers 1797]

Photos (mnist_core/reading/photographs.py): MNIST test digits rewritten with a ballpoint, blue
ink, a pencil or a marker on white, tinted, lined or squared paper, under uneven light and a
soft shadow, turned, tilted, blurred, noisy, 300-1200 px, saved as a phone saves them (JPEG,
some with their rotation in EXIF, some MPO); one in seven rows of 2-4 digits; and non-digits
photographed the same way (a blank sheet, a printed letter, a smiley, a dash, a texture). Two
sets: one the photo reading was tuned on (test digits 0-4,999, seed 1) and one held out from
tuning (test digits 5,000-9,999, seed 2), reported apart. Each photo goes through `classify`'s
own path (decode, EXIF, photo.find_digits, preprocessing, every named model on ONNX Runtime,
calibration, the not-a-digit check).

Printed: each model's share of digits read right (a digit in a photo whose digits were not all
found counts as wrong), the share of digits called not a digit, the share of non-digits caught
("no digit found", or called not a digit), by pen and paper for the improved CNN; the same
photos read the way files were read before photo reading (the whole image's 1 - luminance as
ink), side by side; other writers' digits (scikit-learn's 1,797 scanned digits from 43
writers, UCI) as scans; the time per photo, per 12-megapixel phone photo, and OpenCV's and
scikit-image's times for the same paper-and-ink steps on those.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mnist_core.catalog import named_runs  # noqa: E402
from mnist_core.data import STANDARD_FINGERPRINT, load_mnist  # noqa: E402
from mnist_core.reading import photo, runtime  # noqa: E402
from mnist_core.reading.photographs import photos  # noqa: E402
from mnist_core.reading.reading import (  # noqa: E402
    embedding_model,
    image_of_bytes,
    ink_of_image,
    read,
    read_picture,
    readers_for,
)
from mnist_core.store import StoreChain  # noqa: E402

GOALS = {"accuracy": 0.98, "refused": 0.01, "caught": 0.90, "phone_ms": 150}


def whole_image(rgba: np.ndarray, predict, check, temperatures):
    """How a file was read before photo reading: the whole image's ink, its polarity from the
    border, one drawing."""
    luminance, alpha = rgba[..., :3].mean(axis=2), rgba[..., 3]
    border = np.concatenate([luminance[0], luminance[-1], luminance[:, 0], luminance[:, -1]])
    flat = luminance * alpha + float(np.median(border)) * (1 - alpha)
    return read(1.0 - flat if np.median(border) > 0.5 else flat, predict, check, temperatures)


def score(made, predict, check, temperatures, names) -> dict:
    """Counts for one set of photos, read now and as before."""
    counts = collections.Counter()
    by = collections.defaultdict(collections.Counter)
    times = []
    for shot in made:
        started = time.perf_counter()
        picture = read_picture(image_of_bytes(shot.data, "photo"), predict, check, temperatures)
        times.append(time.perf_counter() - started)
        before = whole_image(image_of_bytes(shot.data, "photo"), predict, check, temperatures)
        if not shot.labels:
            caught = not picture.readings or any(r.not_a_digit or r.image28 is None for r in picture.readings)
            counts["non-digits"] += 1
            counts["caught"] += caught
            counts["caught before"] += bool(before.not_a_digit or before.image28 is None)
            by[shot.kind]["non-digits"] += 1
            by[shot.kind]["caught"] += caught
            continue
        whole = len(picture.readings) == len(shot.labels)
        for position, label in enumerate(shot.labels):
            counts["digits"] += 1
            for key in (shot.pen, shot.paper):
                by[key]["digits"] += 1
            if len(shot.labels) == 1:
                counts["single digits"] += 1
                counts["refused before"] += bool(before.not_a_digit)
                for name, p in before.probabilities.items():
                    counts[f"right before {name}"] += int(p.argmax()) == label
            if not whole:
                counts["missed"] += 1
                continue
            reading = picture.readings[position]
            counts["refused"] += bool(reading.not_a_digit)
            for key in (shot.pen, shot.paper):
                by[key]["refused"] += bool(reading.not_a_digit)
            for name in names:
                p = reading.probabilities.get(name)
                right = p is not None and int(p.argmax()) == label
                counts[f"right {name}"] += right
                if name == "improved_cnn":
                    for key in (shot.pen, shot.paper):
                        by[key]["right"] += right
    return {"counts": counts, "by": by, "times": np.array(times)}


def report(title: str, result: dict, names) -> None:
    counts, by, times = result["counts"], result["by"], result["times"]
    digits, singles = counts["digits"], max(counts["single digits"], 1)
    print(f"\n## {title}: {len(times)} photos, {digits} digits ({counts['missed']} in photos whose "
          f"digits were not all found), {counts['non-digits']} non-digits")
    print(f"{'model':<16} {'read right now':>15} {'before (one digit)':>19}")
    for name in names:
        print(f"{name:<16} {counts[f'right {name}'] / digits:>15.1%} "
              f"{counts[f'right before {name}'] / singles:>19.1%}")
    print(f"digits called not a digit: {counts['refused'] / digits:.1%} now, "
          f"{counts['refused before'] / singles:.1%} before")
    print(f"non-digits caught: {counts['caught'] / max(counts['non-digits'], 1):.1%} now, "
          f"{counts['caught before'] / max(counts['non-digits'], 1):.1%} before")
    print("improved_cnn by pen and paper: " + ", ".join(
        f"{key} {v['right'] / v['digits']:.1%} ({v['refused']} refused of {v['digits']})"
        for key, v in by.items() if v["digits"]))
    print("non-digits caught by kind: " + ", ".join(
        f"{key} {v['caught']}/{v['non-digits']}" for key, v in by.items() if v["non-digits"]))
    print(f"time per photo (decode, find, read with every model): p50 {np.median(times) * 1000:.0f} ms, "
          f"p95 {np.percentile(times, 95) * 1000:.0f} ms")


def other_writers(predict, check, temperatures, names, count: int) -> None:
    """scikit-learn's scanned digits (8x8, 43 writers), each scaled up as a scan and read as a file."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    right, right_before, refused, refused_before = collections.Counter(), collections.Counter(), 0, 0
    for image, label in zip(digits.images[:count], digits.target[:count]):
        scan = Image.fromarray((255 - image * 255 / 16).astype(np.uint8))
        scan = scan.resize((64, 64), Image.Resampling.BICUBIC)
        scan = Image.fromarray(np.pad(np.asarray(scan), 16, constant_values=255))
        buffer = io.BytesIO()
        scan.save(buffer, "PNG")
        rgba = image_of_bytes(buffer.getvalue(), "scan")
        before = whole_image(rgba, predict, check, temperatures)
        refused_before += bool(before.not_a_digit)
        for name, p in before.probabilities.items():
            right_before[name] += int(p.argmax()) == label
        picture = read_picture(rgba, predict, check, temperatures)
        if len(picture.readings) != 1:
            continue
        refused += bool(picture.readings[0].not_a_digit)
        for name, p in picture.readings[0].probabilities.items():
            right[name] += int(p.argmax()) == label
    total = min(count, len(digits.images))
    print(f"\n## Other writers: {total} scanned digits (scikit-learn's, 43 writers, 8x8 scaled to 64x64)")
    print("now: " + ", ".join(f"{name} {right[name] / total:.1%}" for name in names)
          + f"; called not a digit {refused / total:.1%}")
    print("before: " + ", ".join(f"{name} {right_before[name] / total:.1%}" for name in names)
          + f"; called not a digit {refused_before / total:.1%}")


def libraries(made) -> None:
    """The paper-and-ink steps (paper's light, threshold, marks) in OpenCV and in scikit-image."""
    from skimage import filters, measure, morphology, transform

    def with_skimage(gray):
        step = max(1, max(gray.shape) // photo.PAPER_SIDE)
        small = transform.downscale_local_mean(gray, (step, step))
        size = max(3, max(small.shape) // photo.PAPER_KERNEL) | 1
        paper = morphology.closing(small, morphology.disk(size // 2))
        paper = filters.gaussian(paper, 1.0)
        paper = transform.resize(paper, gray.shape, order=1)
        ink = np.clip(1 - gray / np.maximum(paper, 1 / 255), 0, 1)
        high = max(filters.threshold_otsu(ink), photo.MIN_CONTRAST)
        mask = filters.apply_hysteresis_threshold(ink, high / 2, high)
        return measure.regionprops(measure.label(mask))

    def with_opencv(gray):
        import cv2

        mask = photo.ink_mask(photo.ink_on_paper(gray))
        return cv2.connectedComponentsWithStats(mask.astype(np.uint8))

    grays = []
    for shot in made:
        rgba = image_of_bytes(shot.data, "photo")
        ink, _, _ = ink_of_image(rgba)
        grays.append((1.0 - ink).astype(np.float32))
    for name, steps in (("OpenCV", with_opencv), ("scikit-image", with_skimage)):
        started = time.perf_counter()
        for gray in grays:
            steps(gray)
        print(f"{name}: {(time.perf_counter() - started) / len(grays) * 1000:.0f} ms per photo "
              "for the paper's light, the threshold and the marks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=600, help="photos in each of the two sets")
    parser.add_argument("--phone", type=int, default=12, help="4000x3000 photos timed")
    parser.add_argument("--writers", type=int, default=1797, help="other writers' scanned digits read")
    args = parser.parse_args()

    stores = StoreChain.default()
    runs = named_runs(stores, STANDARD_FINGERPRINT)
    temperatures, check, notes = readers_for(runs)
    for note in notes:
        print(f"note: {note}")
    predict = runtime.predictor(runs, stores, embedding_model(check))
    names = list(runs)
    data = load_mnist()
    print(f"# Photo reading: {os.cpu_count()} cores; each set made with its own seed")
    tuned = photos(data.x_test[:5000], data.y_test[:5000], args.photos, seed=1)
    report("Tuned on (test digits 0-4,999, seed 1)", score(tuned, predict, check, temperatures, names), names)
    held = photos(data.x_test[5000:], data.y_test[5000:], args.photos, seed=2)
    held_score = score(held, predict, check, temperatures, names)
    report("Held out (test digits 5,000-9,999, seed 2)", held_score, names)
    if args.writers:
        other_writers(predict, check, temperatures, names, args.writers)
    if args.phone:
        phone = photos(data.x_test[5000:], data.y_test[5000:], args.phone, seed=3, side=4000)
        result = score(phone, predict, check, temperatures, names)
        report("Phone-size photos (4000 px on the larger side, 12 megapixels)", result, names)
        libraries(phone)
    print(f"\nGoals: improved_cnn >= {GOALS['accuracy']:.0%} of digits, <= {GOALS['refused']:.0%} refused, "
          f">= {GOALS['caught']:.0%} of non-digits caught, <= {GOALS['phone_ms']} ms per 12-megapixel photo")


if __name__ == "__main__":
    main()
