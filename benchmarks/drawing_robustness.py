"""How well each model reads MNIST test digits re-drawn the way a 280x280 canvas gives them.

    python benchmarks/drawing_robustness.py [--count 2000] [--seed 0]

Each test digit is enlarged to a random size, its strokes thickened or thinned at random,
and placed off-centre on a black 280x280 RGBA canvas. Every named model is then scored
on (a) the original 28x28 images, (b) the canvases through our MNIST-style preprocessing,
and (c) the canvases squashed whole to 28x28, which is what most digit apps do.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from mnist_core.catalog import named_runs  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402
from mnist_core.reading.drawings import CANVAS, redrawn_digit  # noqa: E402
from mnist_core.reading.preprocess import MIN_EXTENT, SIZE, ink, ink_extent, to_mnist  # noqa: E402
from mnist_core.store import StoreChain  # noqa: E402


def naive_resize(image) -> np.ndarray:
    """What most digit apps do: squash the whole canvas to 28x28."""
    small = Image.fromarray(ink(image), mode="F").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(small), 0.0, 1.0).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="test digits to redraw (max 10000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_mnist()
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(data.x_test), size=min(args.count, len(data.x_test)), replace=False)
    labels = data.y_test[chosen]
    canvases = [redrawn_digit(data.x_test[i], rng) for i in chosen]
    inputs = {
        "original 28x28": data.x_test[chosen].astype(np.float32) / 255.0,
        "canvas, our preprocessing": np.stack([to_mnist(c) for c in canvases]),
        "canvas, naive resize": np.stack([naive_resize(c) for c in canvases]),
    }
    runs = named_runs(StoreChain.default(), data.fingerprint)
    print(f"{len(chosen)} MNIST test digits redrawn on a {CANVAS}x{CANVAS} canvas (seed {args.seed})")
    extents = np.array([ink_extent(c) for c in canvases])
    print(f"reach of the redrawn digits (net of the pen): min {extents.min():.0%}, 1st percentile "
          f"{np.percentile(extents, 1):.0%}; below the Draw page's {MIN_EXTENT:.0%}: "
          f"{int((extents < MIN_EXTENT).sum())}")
    print(f"{'model':16s}" + "".join(f"{name:>28s}" for name in inputs) + f"{'loss (points)':>16s}")
    for name, run in runs.items():
        model = run.load_model()
        accuracy = {kind: float(np.mean(model.predict(x, batch_size=500, verbose=0).argmax(1) == labels))
                    for kind, x in inputs.items()}
        drop = 100 * (accuracy["original 28x28"] - accuracy["canvas, our preprocessing"])
        print(f"{name:16s}" + "".join(f"{accuracy[k]:>28.2%}" for k in inputs) + f"{drop:>16.2f}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/drawing_robustness.py"))
