"""Training speed per model kind: the lab's way against the plain `model.fit` way, side by side.

    python benchmarks/train_speed.py [--images 60000] [--repeats 3] [--no-sweeps]

Single models (reference MLP 25/15, reference CNN, improved CNN): one epoch of `model.fit` on
`--images` training images, one step per compiled call (the plain way) against
`models.STEPS_PER_CALL` steps per call and the model as `mnist_core.training.train` builds it
(the reference models' weights are bit-identical, tests/test_training.py; the improved CNN's
batch norm is fused, the same math); for the improved CNN also the same in mixed bfloat16.
Sweeps: the 8-point lambda and 11-point width sweeps, one plain fit per point against the
fused graph (benchmarks/sweep_speed.py's two sides, full 60,000 images). The sides alternate,
`--repeats` timed epochs each after a warm-up; medians. Prints GFLOP/s achieved (3x the
forward pass's multiply-adds x2 per image) against the measured float32 matmul peak, then
`<kind>_speedup=` lines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

KINDS = {"mlp": {"hidden": (25, 15)}, "cnn": {}, "improved_cnn": {}}


def training_flops_per_image(model) -> float:
    """Forward multiply-adds of Dense and Conv2D layers, x2 for FLOPs, x3 for forward + backward."""
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            macs += int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D):
            out_h, out_w = layer.output.shape[1:3]
            macs += out_h * out_w * int(np.prod(layer.kernel.shape))
    return 3 * 2 * macs


def fit_epoch(config, x, y, steps_per_call: int, for_training: bool = True):
    """A function that trains one more epoch of one model and returns its seconds."""
    import keras
    from sweep_speed import epoch_timer

    from mnist_core.models import build, compile_for_training
    from mnist_core.training import shuffled_batches

    keras.utils.set_random_seed(config.seed)
    model = build(config, for_training)
    compile_for_training(model, config, -(-len(x) // config.batch_size), steps_per_call=steps_per_call)
    batches = shuffled_batches(x, y, config)

    def run():
        timer = epoch_timer()
        model.fit(batches, epochs=1, verbose=0, callbacks=[timer])
        return timer.seconds

    run.model = model
    return run


def alternate(sides: dict, repeats: int) -> dict[str, float]:
    for run in sides.values():
        run()  # warm-up: tracing, first-call allocation
    times = {side: [] for side in sides}
    for _ in range(repeats):
        for side, run in sides.items():
            times[side].append(run())
    return {side: statistics.median(values) for side, values in times.items()}


def compare(title: str, sides: dict, flops: float, peak: float, repeats: int) -> list[float]:
    """Time the sides (plain first), print them with GFLOP/s, return plain / each other side."""
    medians = alternate(sides, repeats)
    line = ", ".join(f"{side} {seconds:.2f} s ({flops / seconds / 1e9:.0f} GFLOP/s)"
                     for side, seconds in medians.items())
    print(f"{title}, floor {flops / peak / 1e9:.2f} s at the peak): {line}", flush=True)
    plain, *others = medians.values()
    return [plain / other for other in others]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60000, help="training images per epoch (single models)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-sweeps", action="store_true", help="single models only")
    args = parser.parse_args()

    from sweep_speed import fit_epoch as sweep_fit_epoch
    from sweep_speed import fused_epoch, matmul_peak_gflops, mlp_flops_per_sample

    from mnist_core.catalog import REFERENCE_WIDTHS, lambda_configs, width_configs
    from mnist_core.configs import RunConfig
    from mnist_core.data import load_mnist
    from mnist_core.models import STEPS_PER_CALL
    from mnist_core.training import arrays_for

    data = load_mnist()
    peak = matmul_peak_gflops()
    print(f"cores={os.cpu_count()} float32 matmul peak {peak:.0f} GFLOP/s; {args.images:,} images per "
          f"single-model epoch; medians of {args.repeats} alternating epochs per side", flush=True)
    speedups = {}
    for kind, overrides in KINDS.items():
        config = RunConfig.for_model(kind, limit=args.images if args.images < 60000 else None, **overrides)
        x, y, _, _ = arrays_for(config, data)
        sides = {"plain fit, float32, 1 step per call": fit_epoch(config, x, y, 1, for_training=False),
                 f"lab fit, {STEPS_PER_CALL} steps per call": fit_epoch(config, x, y, STEPS_PER_CALL)}
        if kind == "improved_cnn":  # and the same in mixed bfloat16 (--precision mixed_bfloat16)
            bf16 = replace(config, precision="mixed_bfloat16")
            sides["lab fit in bfloat16"] = fit_epoch(bf16, x, y, STEPS_PER_CALL)
        flops = training_flops_per_image(next(iter(sides.values())).model) * len(x)
        ratios = compare(f"{kind} (batch {config.batch_size}", sides, flops, peak, args.repeats)
        speedups[kind] = ratios[0]
        if len(ratios) > 1:
            speedups[f"{kind}_bf16"] = ratios[1]
    if not args.no_sweeps:
        x, y = data.x_train.astype(np.float32) / 255.0, data.y_train
        suites = {"lambda_sweep": lambda_configs(epochs=1),
                  "width_sweep": width_configs(REFERENCE_WIDTHS, epochs=1)}
        for name, configs in suites.items():
            sides = {"one plain fit per point": sweep_fit_epoch(configs, x, y),
                     "fused": fused_epoch(configs, x, y)}
            flops = sum(mlp_flops_per_sample(c.hidden) for c in configs) * len(x)
            (speedups[name],) = compare(f"{name} ({len(configs)} models", sides, flops, peak, args.repeats)
    for name, ratio in speedups.items():
        print(f"{name}_speedup={ratio:.2f}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/train_speed.py"))
