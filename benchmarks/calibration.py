"""How far each named model's confidence can be trusted, before and after temperature scaling.

    python benchmarks/calibration.py

From each run's stored test probabilities and the committed test labels (no MNIST needed):
the temperature is fitted on the 5,000 test images at even positions and expected calibration
error (ECE, 15 equal bins) is measured on the 5,000 at odd positions. Two fits side by side:
the temperature with the least ECE on the fitted half (what the dashboard uses) and the one
with the least negative log-likelihood (Guo et al. 2017).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mnist_core.catalog import named_runs  # noqa: E402
from mnist_core.data import STANDARD_FINGERPRINT  # noqa: E402
from mnist_core.reading.calibration import BINS, SPLIT, calibrate  # noqa: E402
from mnist_core.store import StoreChain  # noqa: E402
from mnist_core.suspects import given_labels  # noqa: E402


def main() -> None:
    print(f"ECE over {BINS} equal confidence bins; {SPLIT}")
    print(f"{'model':16s}{'accuracy':>10s}{'ECE before':>12s}{'T (ECE fit)':>13s}{'ECE after':>11s}"
          f"{'T (NLL fit)':>13s}{'ECE after':>11s}")
    for name, run in named_runs(StoreChain.default(), STANDARD_FINGERPRINT).items():
        probabilities, labels = run.predictions(), given_labels(run)
        by_ece, by_nll = calibrate(probabilities, labels), calibrate(probabilities, labels, by="nll")
        accuracy = float((probabilities[1::2].argmax(1) == labels[1::2]).mean())
        print(f"{name:16s}{accuracy:>10.2%}{by_ece.before.ece:>12.2%}{by_ece.temperature:>13.2f}"
              f"{by_ece.after.ece:>11.2%}{by_nll.temperature:>13.2f}{by_nll.after.ece:>11.2%}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/calibration.py"))
