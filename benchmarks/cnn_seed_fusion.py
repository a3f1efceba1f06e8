"""Would fusing seeds speed up the reference CNN? A timing probe, not a trainer.

    python benchmarks/cnn_seed_fusion.py [--models 3] [--calls 20]

Times Adam training steps (batch 32, 16 steps per compiled call) of M reference-CNN-shaped
models in one graph, against one model alone, on random inputs (timing only: the
arithmetic, not the data, is what costs). The M models' convolutions are one grouped
convolution each (model m's filters are group m), their dense layers one batched matmul,
as fused.py stacks the MLPs. Both with and without XLA. Prints seconds per model per
60,000-image epoch and `cnn_seed_fusion_speedup=` (one model alone / fused, per model,
without XLA).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BATCH, STEPS_PER_CALL = 32, 16


def seconds_per_step(models: int, xla: bool, calls: int) -> float:
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shapes = [(3, 3, 1, 32 * models), (32 * models,), (3, 3, 32, 64 * models), (64 * models,),
              (3, 3, 64, 64 * models), (64 * models,), (models, 576, 64), (models, 1, 64),
              (models, 64, 32), (models, 1, 32), (models, 32, 10), (models, 1, 10)]
    params = [tf.Variable(rng.normal(0, 0.05, shape).astype(np.float32)) for shape in shapes]
    optimizer = keras.optimizers.Adam(1e-3)

    def forward(x):  # x: (models, batch, 28, 28); each model's images are one input channel
        h = tf.transpose(x, (1, 2, 3, 0))
        for layer in (0, 2, 4):
            h = tf.nn.relu(tf.nn.conv2d(h, params[layer], 1, "VALID") + params[layer + 1])
            if layer < 4:
                h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.reshape(tf.transpose(tf.reshape(h, (BATCH, 3, 3, models, 64)), (3, 0, 1, 2, 4)),
                       (models, BATCH, 576))
        for layer in (6, 8):
            h = tf.nn.relu(tf.einsum("mbi,mij->mbj", h, params[layer]) + params[layer + 1])
        return tf.einsum("mbi,mij->mbj", h, params[10]) + params[11]

    @tf.function(jit_compile=xla)
    def steps(xs, ys):
        loss = tf.constant(0.0)
        for i in tf.range(STEPS_PER_CALL):
            with tf.GradientTape() as tape:
                per_image = tf.nn.sparse_softmax_cross_entropy_with_logits(ys[i], forward(xs[i]))
                loss = tf.reduce_sum(tf.reduce_mean(per_image, axis=1))
            optimizer.apply_gradients(zip(tape.gradient(loss, params), params))
        return loss

    xs = tf.constant(rng.random((STEPS_PER_CALL, models, BATCH, 28, 28), dtype=np.float32))
    ys = tf.constant(rng.integers(0, 10, (STEPS_PER_CALL, models, BATCH)).astype(np.int32))
    steps(xs, ys).numpy()  # compile
    started = time.perf_counter()
    for _ in range(calls):
        steps(xs, ys).numpy()
    return (time.perf_counter() - started) / (calls * STEPS_PER_CALL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=3, help="models fused (default 3: the seeds)")
    parser.add_argument("--calls", type=int, default=20, help=f"timed calls of {STEPS_PER_CALL} steps")
    args = parser.parse_args()
    steps_per_epoch = 60000 // BATCH
    per_model = {}
    for xla in (False, True):
        for models in (1, args.models):
            seconds = seconds_per_step(models, xla, args.calls) / models * steps_per_epoch
            per_model[xla, models] = seconds
            print(f"{'XLA  ' if xla else 'plain'} {models} model(s) in one graph: {seconds:6.1f} s per model "
                  f"per 60,000-image epoch", flush=True)
    print(f"cores={os.cpu_count()}")
    print(f"cnn_seed_fusion_speedup={per_model[False, 1] / per_model[False, args.models]:.2f}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/cnn_seed_fusion.py"))
