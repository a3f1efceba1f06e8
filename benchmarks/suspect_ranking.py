"""Which suspect-label ranking finds wrong labels best, on random and on confusable label noise.

    python benchmarks/suspect_ranking.py [--flips 100] [--trials 5]

Three kinds of noise, each flipping `--flips` test labels per trial in a copy of the labels:
random (each to another digit at random: usually an implausible digit, easy to find) and
confusable (each to the digit a model outside every candidate, the reference CNN with seed 1,
finds second most likely: the plausible mistakes a person labelling MNIST would make), and
confusable on ambiguous images (the same, among the 500 test images that model is least sure
of: where a person's mistakes would cluster). Each
candidate ranking scores all 10,000 images; the benchmark prints the share of the top 50 and
of the top 100 ranks that are flipped labels (with 100 flips, the top 100's share is also the
share of flipped labels found there), averaged over trials. Candidates: the former default,
three voters (the strongest named runs), with cleanlab's self-confidence,
normalized margin and confidence-weighted entropy; all CNN runs; all runs at or above 99%
test accuracy; every stored run; the default voters with test-time augmentation (their
probabilities averaged over the image and 6 small shifts and rotations; needs MNIST); and
cleanlab's ensemble scoring of the default voters.
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
from mnist_core.data import STANDARD_FINGERPRINT, load_mnist  # noqa: E402
from mnist_core.store import StoreChain  # noqa: E402
from mnist_core.suspects import standard_test_labels  # noqa: E402

NOISE_MODEL = "Reference CNN, 10 ep, seed 1"
ACCURACY_FLOOR = 0.99
AMBIGUOUS = 500  # the test images the noise model is least sure of (smallest top-two margin)


def augmented_probabilities(run, images: np.ndarray) -> np.ndarray:
    """The run's test probabilities averaged over the images and 6 small changes of them
    (every model here ends in logits, as mnist_core.reading.predict assumes)."""
    from scipy import ndimage
    from scipy.special import softmax

    model = run.load_model()
    views = [images]
    views += [np.roll(images, shift, axis=axis) for axis in (1, 2) for shift in (-1, 1)]
    views += [ndimage.rotate(images, angle, axes=(1, 2), reshape=False, order=1) for angle in (-8, 8)]
    return np.mean([softmax(np.asarray(model.predict(v, batch_size=1000, verbose=0), np.float64), axis=1)
                    for v in views], axis=0)


def main() -> None:
    import cleanlab.rank

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=100)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    stores = StoreChain.default(None)
    runs = [run for run in stores.runs() if run.data_fingerprint == STANDARD_FINGERPRINT]
    noise_run = next(run for run in runs if run.config.label == NOISE_MODEL)
    runs = [run for run in runs if run.key != noise_run.key]
    named = named_runs(stores, STANDARD_FINGERPRINT)
    voters = dict(sorted(named.items(), key=lambda item: -item[1].test_accuracy)[:3])  # the former default
    labels = standard_test_labels()
    probs = {run.key: run.predictions().astype(np.float64) for run in runs}
    default = [probs[run.key] for run in voters.values()]
    images = load_mnist().x_test.astype(np.float32) / 255
    tta = [augmented_probabilities(run, images) for run in voters.values()]

    def mean_score(members, method="self_confidence"):
        return lambda noisy: cleanlab.rank.get_label_quality_scores(noisy, np.mean(members, axis=0),
                                                                    method=method)

    cnns = [probs[r.key] for r in runs if "CNN" in r.config.label]
    strong = [probs[r.key] for r in runs if r.test_accuracy >= ACCURACY_FLOOR]
    candidates = {
        "3 strongest named runs, self-confidence (the former default)": mean_score(default),
        "3 strongest named runs, normalized margin": mean_score(default, "normalized_margin"),
        "3 strongest named runs, confidence-weighted entropy":
            mean_score(default, "confidence_weighted_entropy"),
        f"all {len(cnns)} CNN runs, self-confidence (the default now)": mean_score(cnns),
        f"all {len(strong)} runs at {ACCURACY_FLOOR:.0%}+ test accuracy, self-confidence": mean_score(strong),
        f"every stored run ({len(runs)}), self-confidence": mean_score(list(probs.values())),
        "3 strongest named runs with test-time augmentation": mean_score(tta),
        f"all {len(cnns)} CNN runs, normalized margin": mean_score(cnns, "normalized_margin"),
        "3 strongest named runs, cleanlab ensemble scoring":
            lambda noisy: cleanlab.rank.get_label_quality_ensemble_scores(noisy, default, verbose=False),
    }
    ranked = np.sort(noise_run.predictions(), axis=1)
    second = np.argsort(noise_run.predictions(), axis=1)[:, -2]
    ambiguous = np.argsort(ranked[:, -1] - ranked[:, -2], kind="stable")[:AMBIGUOUS]
    print(f"{args.flips} labels flipped per trial, {args.trials} trials; confusable noise from "
          f"{NOISE_MODEL} ({noise_run.test_accuracy:.2%}), not a voter anywhere; the 3 strongest named runs: "
          f"{', '.join(voters)}")
    print(f"{'ranking':62s}{'random: top 50':>15s}{'top 100':>9s}{'confusable: top 50':>20s}{'top 100':>9s}"
          f"{'ambiguous: top 50':>19s}{'top 100':>9s}")
    for name, score in candidates.items():
        found = {"random": ([], []), "confusable": ([], []), "ambiguous": ([], [])}
        for trial in range(args.trials):
            rng = np.random.default_rng(trial)
            anywhere = rng.choice(len(labels), args.flips, replace=False)
            unsure = rng.choice(ambiguous, args.flips, replace=False)
            for kind in found:
                flipped = unsure if kind == "ambiguous" else anywhere
                noisy = labels.copy()
                if kind == "random":
                    noisy[flipped] = (noisy[flipped] + rng.integers(1, 10, args.flips)) % 10
                else:  # the noise model's runner-up, or its top when that is not the label
                    top = np.argsort(noise_run.predictions()[flipped], axis=1)[:, -1]
                    noisy[flipped] = np.where(top != labels[flipped], top, second[flipped])
                order = np.argsort(score(noisy), kind="stable")
                for count, kept in zip((50, 100), found[kind]):
                    hits = len(set(order[:count].tolist()) & set(flipped.tolist()))
                    kept.append(hits / min(count, args.flips))
        print(f"{name[:62]:62s}" + "".join(f"{np.mean(v):>{w}.1%}" for v, w in zip(
            [*found["random"], *found["confusable"], *found["ambiguous"]], (15, 9, 20, 9, 19, 9))))


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/suspect_ranking.py"))
