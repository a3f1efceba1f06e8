"""How long load_mnist() takes from each kind of source (median of 5, in-process cache cleared).

    python benchmarks/load_speed.py

Uses $MNIST_PATH (a Keras-layout .npz) and writes gzipped and raw IDX copies to a
temporary folder. Target: under a second from any source.
"""

from __future__ import annotations

import gzip
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from mnist_core import data  # noqa: E402


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with (gzip.open if gz else open)(path, "wb") as handle:
        handle.write(header + array.tobytes())


def timed(path) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        data.read_mnist(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    mnist = data.load_mnist()
    sources = {"npz": mnist.source}
    with tempfile.TemporaryDirectory() as folder:
        for gz in (True, False):
            target = Path(folder) / ("idx-gz" if gz else "idx")
            target.mkdir()
            for name, stem in data.IDX_FILES.items():
                write_idx(target / (stem + (".gz" if gz else "")), getattr(mnist, name), gz)
            sources["IDX, gzipped" if gz else "IDX"] = target
        print(f"cores={os.cpu_count()}")
        for name, path in sources.items():
            seconds = timed(path)
            verdict = "ok" if seconds < 1 else "SLOW"
            print(f"load_mnist from {name:13s} {seconds:.3f} s (median of 5)  {verdict}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/load_speed.py"))
