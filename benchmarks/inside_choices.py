"""The Draw page's inside view: which saliency method and which neighbour distance, measured.

    python benchmarks/inside_choices.py [--images 200] [--neighbour-queries 1000]

For every named model, on MNIST test digits:
- saliency: milliseconds per map (compiled, one image at a time, as the page asks) and
  faithfulness by deletion: black out the pixels a map ranks highest for the top digit,
  5 at a time up to 80, and average the top digit's probability over those steps (lower:
  the map found the pixels the answer rests on). A random order is the yardstick. For
  integrated gradients also completeness: how far the map's sum is from the change in the
  top digit's logit from black to the digit (median, relative; exact integral: 0).
- neighbours: of the 8 training digits nearest each test digit in the model's penultimate
  layer (all 60,000), the share that carry the test digit's label, cosine vs Euclidean.
Prints one line per model and method, then the choices as `key=value` lines.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DELETION_STEPS = np.arange(0, 81, 5)


def deletion_score(forward, images: np.ndarray, maps: np.ndarray) -> float:
    """Mean over images and deletion steps of the original top digit's probability."""
    from scipy.special import softmax

    scores = []
    for image, saliency in zip(images, maps):
        order = np.argsort(-saliency.ravel(), kind="stable")
        batch = np.repeat(image.ravel()[None], len(DELETION_STEPS), axis=0)
        for row, count in enumerate(DELETION_STEPS):
            batch[row, order[:count]] = 0
        probabilities = softmax(np.asarray(forward(batch.reshape(-1, 28, 28)), np.float64), axis=1)
        scores.append(probabilities[:, probabilities[0].argmax()].mean())
    return float(np.mean(scores))


def occlusion(forward, image28: np.ndarray, patch: int = 4, stride: int = 2) -> np.ndarray:
    """Occlusion saliency for the top digit (the alternative measured here): each
    pixel's mean drop in the top logit when a black patch covers it. `forward` maps a batch
    of images to logits."""
    image = np.asarray(image28, np.float32)
    corners = [(r, c) for r in range(0, 28 - patch + 1, stride) for c in range(0, 28 - patch + 1, stride)]
    batch = np.repeat(image[None], len(corners) + 1, axis=0)
    for i, (r, c) in enumerate(corners):
        batch[i, r:r + patch, c:c + patch] = 0
    logits = np.asarray(forward(batch))
    top = int(logits[-1].argmax())
    drops = logits[-1, top] - logits[:-1, top]
    total = np.zeros((28, 28))
    covered = np.zeros((28, 28))
    for drop, (r, c) in zip(drops, corners):
        total[r:r + patch, c:c + patch] += drop
        covered[r:r + patch, c:c + patch] += 1
    return total / np.maximum(covered, 1)


def timed_maps(method, images: np.ndarray) -> tuple[np.ndarray, float]:
    method(images[0])  # compile
    maps, seconds = [], []
    for image in images:
        started = time.perf_counter()
        maps.append(method(image))
        seconds.append(time.perf_counter() - started)
    return np.stack(maps), float(np.median(seconds) * 1000)


def neighbour_agreement(embed, data, queries: int) -> dict[str, float]:
    train = embed(data.x_train.astype(np.float32) / 255)
    test = embed(data.x_test[:queries].astype(np.float32) / 255)
    labels = data.y_test[:queries]
    unit = lambda m: m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)  # noqa: E731
    distances = {
        "cosine": 1 - unit(test) @ unit(train).T,
        "euclidean": (test ** 2).sum(1)[:, None] - 2 * test @ train.T + (train ** 2).sum(1)[None],
    }
    shares = {}
    for name, matrix in distances.items():
        nearest = np.argpartition(matrix, 7, axis=1)[:, :8]
        shares[name] = float((data.y_train[nearest] == labels[:, None]).mean())
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--neighbour-queries", type=int, default=1000)
    parser.add_argument("--steps", default="16,24,32", help="integrated gradients' steps to compare")
    args = parser.parse_args()

    import tensorflow as tf

    from mnist_core.catalog import named_runs
    from mnist_core.data import load_mnist
    from mnist_core.reading.inside import IG_STEPS, Inspector
    from mnist_core.store import StoreChain

    steps_to_compare = sorted({int(v) for v in args.steps.split(",")} | {IG_STEPS})
    data = load_mnist()
    images = data.x_test[:args.images].astype(np.float32) / 255
    rng = np.random.default_rng(0)
    totals = {}
    print(f"cores={os.cpu_count()} images={args.images} deletion steps={DELETION_STEPS.tolist()}")
    for name, run in named_runs(StoreChain.default(), data.fingerprint).items():
        model = run.load_model()
        forward = tf.function(lambda batch, model=model: model(batch, training=False), jit_compile=True)
        inspectors = {steps: Inspector(model, steps) for steps in steps_to_compare}
        methods = {f"integrated gradients, {steps} steps":
                   partial(lambda i, s: s.look(i).drives_top, s=inspector)
                   for steps, inspector in inspectors.items()}
        methods["occlusion, 4x4 patches, stride 2"] = partial(occlusion, forward, patch=4, stride=2)
        methods["occlusion, 2x2 patches, stride 1"] = partial(occlusion, forward, patch=2, stride=1)
        methods["random order (yardstick)"] = lambda image: rng.random((28, 28))
        for method_name, method in methods.items():
            maps, ms = timed_maps(method, images)
            score = deletion_score(forward, images, maps)
            totals.setdefault(method_name, []).append(score)
            print(f"{name:16s} {method_name:36s} {ms:7.1f} ms/map  deletion score {score:.3f}")
        for steps, inspector in inspectors.items():
            looks = [inspector.look(image) for image in images]
            error = np.median([abs(look.drives_top.sum() - look.top_gain) / max(abs(look.top_gain), 1)
                               for look in looks])
            print(f"{name:16s} integrated gradients, {steps} steps: completeness error, median {error:.1%}")
        inspector = Inspector(model)
        shares = neighbour_agreement(inspector.embed, data, args.neighbour_queries)
        for distance, share in shares.items():
            totals.setdefault(distance, []).append(share)
        print(f"{name:16s} 8 nearest of 60,000 share the label: cosine {shares['cosine']:.1%}, "
              f"euclidean {shares['euclidean']:.1%}")
    for key, values in totals.items():
        print(f"mean over models: {key}: {np.mean(values):.3f}")
    ig = np.mean(totals[f"integrated gradients, {IG_STEPS} steps"])
    occ = min(np.mean(totals[name]) for name in ("occlusion, 4x4 patches, stride 2",
                                                  "occlusion, 2x2 patches, stride 1"))
    print(f"saliency_choice={'integrated_gradients' if ig <= occ else 'occlusion'}")
    cosine_wins = np.mean(totals["cosine"]) >= np.mean(totals["euclidean"])
    print(f"distance_choice={'cosine' if cosine_wins else 'euclidean'}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/inside_choices.py"))
