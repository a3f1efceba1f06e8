"""Which score best tells a drawing that is no digit from a digit, measured on canvas drawings.

    python benchmarks/not_a_digit.py [--digits 2000] [--per-kind 100] [--seed 0]

Non-digits: scribbles, letters that look like no digit, hatchings, stars and blobs drawn with
a round pen on a 280x280 canvas (mnist_core/reading/drawings.py). Digits: MNIST test digits redrawn
as canvas images, as benchmarks/drawing_robustness.py redraws them. Both go through the Draw
page's own path (size check, preprocessing, every named model). For each candidate score this
prints its AUROC and, at a threshold set so that 0.5% of redrawn *training* digits (outside
the neighbours' committed subset) are refused, the share of non-digits caught and of redrawn
test digits wrongly refused. Then the check the Draw page uses (mnist_core/reading/digit_check.py, as
committed), and the same check refitted with each kind of non-digit left out, measured on that
kind: how far it reaches beyond the drawings it learned from. Non-digits the size check
refuses are counted apart.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from mnist_core.catalog import named_runs  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402
from mnist_core.reading import digit_check  # noqa: E402
from mnist_core.reading.drawings import KINDS, non_digit, redrawn_digit  # noqa: E402
from mnist_core.reading.neighbours import read_subset  # noqa: E402
from mnist_core.reading.preprocess import MIN_EXTENT, ink_extent  # noqa: E402
from mnist_core.store import StoreChain, sha256_file  # noqa: E402

REFUSED_TRAINING_SHARE = digit_check.REFUSED_SHARE


def auroc(digit_scores: np.ndarray, other_scores: np.ndarray) -> float:
    """Probability that a random digit scores higher (more digit-like) than a random non-digit."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(digit_scores, other_scores).statistic / (len(digit_scores) * len(other_scores)))


def candidate_scores(outputs: dict, check: digit_check.DigitCheck,
                     images: np.ndarray) -> dict[str, np.ndarray]:
    """Each candidate score (higher = more like a digit) from every named model's outputs."""
    from scipy.special import logsumexp, softmax

    logits = {name: z for name, (z, _) in outputs.items()}
    embedding = outputs[digit_check.MODEL_NAME][1]
    probabilities = {name: softmax(z, axis=1) for name, z in logits.items()}
    tops = np.stack([p.argmax(1) for p in probabilities.values()], axis=1)
    majority = np.array([np.bincount(row, minlength=10).argmax() for row in tops])
    features = check.features(embedding)
    flat = images.reshape(len(images), -1)
    bank_pixels = read_subset().floats().reshape(-1, 784)
    pixel_distance = np.sqrt(np.maximum((flat ** 2).sum(1)[:, None] - 2 * flat @ bank_pixels.T
                                        + (bank_pixels ** 2).sum(1)[None], 0))
    model = digit_check.MODEL_NAME
    return {
        "max probability, mean over the models": np.mean([p.max(1) for p in probabilities.values()], axis=0),
        "max of the models' mean probability": np.mean(list(probabilities.values()), axis=0).max(1),
        "models agreeing with the majority": (tops == majority[:, None]).mean(1),
        f"max probability, {model}": probabilities[model].max(1),
        f"energy (logsumexp of logits), {model}": logsumexp(logits[model], axis=1),
        f"nearest training digits, cosine, {model}": -features[:, -2],
        f"nearest training digits, euclidean, {model}": -features[:, -1],
        "nearest training digits, pixels": -np.sort(pixel_distance, axis=1)[:, :digit_check.NEAREST].mean(1),
        "the Draw page's check (digit_check)": -check.scores(embedding),
    }


def model_outputs(models: dict, images: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: (logits, penultimate-layer outputs)} for a batch of 28x28 images."""
    import keras

    outputs = {}
    for name, model in models.items():
        probe = keras.Model(model.inputs, [model.outputs[0], model.layers[-2].output])
        outputs[name] = tuple(np.asarray(a, np.float64) for a in probe.predict(images, 500, verbose=0))
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=2000,
                        help="test digits (and training digits) to redraw")
    parser.add_argument("--per-kind", type=int, default=100,
                        help=f"drawings of each kind ({', '.join(KINDS)})")
    parser.add_argument("--fit-per-kind", type=int, default=400,
                        help="non-digits of each kind for the refits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_mnist()
    runs = named_runs(StoreChain.default(), data.fingerprint)
    if digit_check.MODEL_NAME not in runs:
        raise digit_check.UnsafeFile(f"no {digit_check.MODEL_NAME} run is stored")
    models = {name: run.load_model() for name, run in runs.items()}
    check = digit_check.read(sha256_file(runs[digit_check.MODEL_NAME].model_path))
    rng = np.random.default_rng(args.seed)
    subset = read_subset()
    outside = np.setdiff1d(np.arange(len(data.x_train)), subset.indices)
    test_canvases = [redrawn_digit(data.x_test[i], rng)
                     for i in rng.choice(len(data.x_test), min(args.digits, len(data.x_test)), replace=False)]
    train_canvases = [redrawn_digit(data.x_train[i], rng)
                      for i in rng.choice(outside, args.digits, replace=False)]
    other_canvases = {kind: [non_digit(kind, rng) for _ in range(args.per_kind)] for kind in KINDS}

    small_digits = sum(ink_extent(c) < MIN_EXTENT for c in test_canvases)
    small = {kind: sum(ink_extent(c) < MIN_EXTENT for c in canvases)
             for kind, canvases in other_canvases.items()}
    total_others = args.per_kind * len(KINDS)
    print(f"{len(test_canvases)} redrawn test digits, {len(train_canvases)} redrawn training digits, "
          f"{total_others} non-digits ({args.per_kind} each of {', '.join(KINDS)}); seed {args.seed}")
    print(f"size check (reach net of the pen under {MIN_EXTENT:.0%}): refuses "
          f"{sum(small.values())} non-digits "
          f"({', '.join(f'{k} {v}' for k, v in small.items())}) and {small_digits} test digits")

    test = digit_check.canvas_images(test_canvases)
    train = digit_check.canvas_images(train_canvases)
    others = {kind: digit_check.canvas_images(canvases) for kind, canvases in other_canvases.items()}
    kinds = np.concatenate([[kind] * len(images) for kind, images in others.items()])
    other = np.concatenate(list(others.values()))
    digit_scores = candidate_scores(model_outputs(models, test), check, test)
    train_scores = candidate_scores(model_outputs(models, train), check, train)
    other_scores = candidate_scores(model_outputs(models, other), check, other)
    print(f"\nat a threshold refusing {REFUSED_TRAINING_SHARE:.1%} of the redrawn training digits "
          "(the check: its own committed threshold):")
    print(f"{'score (higher: more like a digit)':46s}{'AUROC':>7s}{'caught':>8s}{'refused':>9s}"
          "   caught by kind")
    for name in digit_scores:
        threshold = (-check.threshold if name.startswith("the Draw page")
                     else np.quantile(train_scores[name], REFUSED_TRAINING_SHARE))
        caught = other_scores[name] < threshold
        refused = np.mean(digit_scores[name] < threshold) * len(test) / len(test_canvases) + \
            small_digits / len(test_canvases)
        by_kind = " ".join(f"{kind} {caught[kinds == kind].mean():.0%}" for kind in KINDS)
        print(f"{name[:46]:46s}{auroc(digit_scores[name], other_scores[name]):7.3f}{caught.mean():8.1%}"
              f"{refused:9.2%}   {by_kind}")

    print(f"\nthe check refitted without one kind ({args.fit_per_kind} of each other kind), on that kind:")
    embed = digit_check.embedder(models[digit_check.MODEL_NAME])
    fit_digits, fit_others = digit_check.fitting_drawings(data, subset, 6000 + 4000, args.fit_per_kind)
    bank, digits_fit, digits_held = embed(subset.floats()), embed(fit_digits[:6000]), embed(fit_digits[6000:])
    fit_embedded = {kind: embed(images) for kind, images in fit_others.items()}
    test_embedded = embed(test)
    for left_out in KINDS:
        refit = digit_check.fit_embedded(check.model_sha256, bank, digits_fit, np.concatenate(
            [e for kind, e in fit_embedded.items() if kind != left_out]), digits_held)
        caught = np.mean(refit.scores(embed(others[left_out])) > refit.threshold)
        refused = np.mean(refit.scores(test_embedded) > refit.threshold)
        print(f"  without {left_out:9s} caught {caught:6.1%} of {left_out}s; "
              f"refused {refused:.2%} of test digits")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/not_a_digit.py"))
