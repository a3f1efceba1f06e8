"""The improved CNN's training step without `model.fit`: Keras's batch norm vs fused, float32 vs bfloat16.

    python benchmarks/improved_cnn_step.py [--steps 30] [--rounds 2]

Times forward + backward of the whole model (augmentation included) on one batch of 128
images as a tf.function, `--steps` calls per round, the variants alternating: as stored
(Keras's batch norm, float32), as trained (fused batch norm, float32) and as trained with
--precision mixed_bfloat16. `model.fit`'s epoch times on this machine cluster at powers of two
times 10 ms (README, Benchmarks); a plain loop does not. Last lines: `<variant>_speedup=`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import tensorflow as tf

    from mnist_core.configs import RunConfig
    from mnist_core.models import build

    config = RunConfig.for_model("improved_cnn")
    models = {"keras_bn_float32": build(config),
              "fused_bn_float32": build(config, for_training=True),
              "fused_bn_bfloat16": build(replace(config, precision="mixed_bfloat16"), for_training=True)}
    x = tf.random.uniform((config.batch_size, 28, 28))
    steps = {}
    for name, model in models.items():
        def step(x, model=model):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.cast(model(x, training=True), "float32"))
            return tape.gradient(loss, model.trainable_variables)

        steps[name] = tf.function(step)
        steps[name](x)  # trace
    best = {name: float("inf") for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                grads = step(x)
            [g.numpy() for g in grads]
            seconds = (time.perf_counter() - started) / args.steps
            print(f"{name}: {seconds * 1000:.1f} ms per step", flush=True)
            best[name] = min(best[name], seconds)
    for name in list(steps)[1:]:
        print(f"{name}_speedup={best['keras_bn_float32'] / best[name]:.2f}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/improved_cnn_step.py"))
