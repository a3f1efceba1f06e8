"""Fused sweep training vs one Keras `model.fit` per point: seconds per epoch, side by side.

The one-fit side is the reference way: `model.fit(x, y, batch_size=32, shuffle=True)` per point.

    python benchmarks/sweep_speed.py [--repeats 3]

After a warm-up, alternates one training epoch of each side (full 60,000 images, batch 32)
for (a) the 8-point reference lambda sweep and (b) the 11-point reference width sweep, and
prints medians. Validation is left out on both sides; `fit` epochs are timed from inside
(`epoch_timer`). The last two lines are
`lambda_sweep_speedup=<ratio>` and `width_sweep_speedup=<ratio>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from mnist_core.catalog import REFERENCE_WIDTHS, lambda_configs, width_configs  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402


def fused_epoch(configs, x, y):
    import tensorflow as tf

    from mnist_core.fused import FusedMLPs

    fused = FusedMLPs(configs)
    x_tf, y_tf = tf.constant(x.reshape(len(x), -1)), tf.constant(y.astype(np.int32))
    rng = np.random.default_rng(0)

    def run():
        order = tf.constant(np.stack([rng.permutation(len(x)) for _ in configs]).astype(np.int32))
        started = time.perf_counter()
        loss, _ = fused.epoch_fn(x_tf, y_tf, order)
        loss.numpy()
        return time.perf_counter() - started

    return run


def epoch_timer():
    """A Keras callback whose `seconds` is its last epoch's, from the epoch's start to its end.

    Timed inside `fit`, not around it: on this machine a `fit` call often returned only at
    10 ms x (2^k - 1) after it began (5.11 s for an epoch of 3.3-4.5 s), waiting for tf.data's
    autotuner to wake up (mnist_core.training.shuffled_batches); not part of an epoch's work.
    """
    import keras

    class EpochTimer(keras.callbacks.Callback):
        seconds = float("nan")

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    return EpochTimer()


def fit_epoch(configs, x, y):
    import keras

    from mnist_core.models import build, compile_for_training

    models = []
    for config in configs:
        keras.utils.set_random_seed(config.seed)
        model = build(config)
        # one step per call: the reference way
        compile_for_training(model, config, len(x) // config.batch_size, steps_per_call=1)
        models.append(model)

    def run():
        seconds = 0.0
        for model, config in zip(models, configs):
            timer = epoch_timer()
            model.fit(x, y, batch_size=config.batch_size, epochs=1, shuffle=True, verbose=0,
                      callbacks=[timer])
            seconds += timer.seconds
        return seconds

    return run


def matmul_peak_gflops() -> float:
    """Best of several large float32 matmuls: what this machine's TensorFlow can reach."""
    import tensorflow as tf

    a = tf.random.normal((2048, 2048))
    best = 0.0
    for _ in range(6):
        started = time.perf_counter()
        tf.matmul(a, a).numpy()
        best = max(best, 2 * 2048**3 / (time.perf_counter() - started) / 1e9)
    return best


def mlp_flops_per_sample(hidden) -> int:
    """Forward + backward multiply-adds of one MLP on one image (backward ~ 2x forward)."""
    sizes = (784, *hidden, 10)
    forward = sum(2 * a * b for a, b in zip(sizes, sizes[1:]))
    return 3 * forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per side (default 3)")
    args = parser.parse_args()
    data = load_mnist()
    x, y = data.x_train.astype(np.float32) / 255.0, data.y_train
    suites = {
        "lambda": lambda_configs(epochs=1),
        "width": width_configs(REFERENCE_WIDTHS, epochs=1),
    }
    results = {}
    for name, configs in suites.items():
        sides = {"fused": fused_epoch(configs, x, y), "fit": fit_epoch(configs, x, y)}
        for run in sides.values():  # warm-up: tracing, first-call allocation
            run()
        times = {side: [] for side in sides}
        for _ in range(args.repeats):
            for side, run in sides.items():
                times[side].append(run())
        results[name] = {side: statistics.median(t) for side, t in times.items()}
        print(f"{name} sweep ({len(configs)} models, 1 epoch, batch 32): "
              f"fused {results[name]['fused']:.2f} s, one fit per point {results[name]['fit']:.2f} s "
              f"(medians of {args.repeats})", flush=True)
    lambda_flops = len(suites["lambda"]) * len(x) * mlp_flops_per_sample((25, 15))
    achieved = lambda_flops / results["lambda"]["fused"] / 1e9
    print(f"fused lambda step: {achieved:.1f} GFLOP/s achieved; measured float32 matmul peak "
          f"{matmul_peak_gflops():.1f} GFLOP/s on {os.cpu_count()} cores")
    print(f"cores={os.cpu_count()}")
    print(f"lambda_sweep_speedup={results['lambda']['fit'] / results['lambda']['fused']:.2f}")
    print(f"width_sweep_speedup={results['width']['fit'] / results['width']['fused']:.2f}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/sweep_speed.py"))
