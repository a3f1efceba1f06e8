"""What the width sweep saves by leaving a zero L2 penalty out of its fused groups, side by side.

    python benchmarks/width_penalty.py [--repeats 3]

One fused epoch (60,000 images) of the 11-point width sweep as trained (every λ = 0, so
mnist_core.fused leaves the penalty out) against the same sweep with λ = 1e-30 (a penalty too
small to change anything, which the graph must compute, as it did for λ = 0 before). The
sides alternate after a warm-up; medians. Last line: `penalty_left_out_speedup=`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from sweep_speed import fused_epoch  # noqa: E402

from mnist_core.catalog import REFERENCE_WIDTHS, width_configs  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = load_mnist()
    x, y = data.x_train.astype(np.float32) / 255.0, data.y_train
    sides = {"penalty left out (λ = 0)": fused_epoch(width_configs(REFERENCE_WIDTHS, epochs=1), x, y),
             "penalty computed (λ = 1e-30)":
                 fused_epoch(width_configs(REFERENCE_WIDTHS, epochs=1, l2=1e-30), x, y)}
    for run in sides.values():
        run()  # warm-up: compile
    times = {side: [] for side in sides}
    for _ in range(args.repeats):
        for side, run in sides.items():
            times[side].append(run())
    medians = {side: statistics.median(values) for side, values in times.items()}
    for side, seconds in medians.items():
        print(f"width sweep, fused epoch, {side}: {seconds:.2f} s (median of {args.repeats})")
    left_out, computed = medians.values()
    print(f"penalty_left_out_speedup={computed / left_out:.2f}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/width_penalty.py"))
