"""How well the suspect-label ranking finds labels known to be wrong.

    python benchmarks/suspect_recovery.py [--flips 100] [--trials 5]

Flips the labels of `--flips` random test images (each to another digit) in a copy of the
test labels, ranks all 10,000 images with the default voting runs' stored probabilities
(every stored CNN run, as the Errors page and `suspects` use),
and counts the flipped images among the top `--flips` ranks and among those confident
learning flags. Needs no MNIST files: the labels are read back from a stored run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from mnist_core.catalog import named_runs  # noqa: E402
from mnist_core.data import STANDARD_FINGERPRINT  # noqa: E402
from mnist_core.store import StoreChain  # noqa: E402
from mnist_core.suspects import default_voters, given_labels, rank_labels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=100)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    stores = StoreChain.default(None)
    voters = default_voters(stores.runs(), named_runs(stores, STANDARD_FINGERPRINT))
    labels = given_labels(next(iter(voters.values())))
    probabilities = np.mean([run.predictions().astype(np.float64) for run in voters.values()], axis=0)
    print(f"voters: {', '.join(voters)}; {args.flips} labels flipped per trial")
    in_top, flagged_right, flagged_all = [], [], []
    for trial in range(args.trials):
        rng = np.random.default_rng(trial)
        flipped = rng.choice(len(labels), args.flips, replace=False)
        noisy = labels.copy()
        noisy[flipped] = (noisy[flipped] + rng.integers(1, 10, args.flips)) % 10
        ranking = rank_labels(probabilities, noisy)
        top = set(ranking["index"].head(args.flips).tolist())
        flagged = set(ranking.loc[ranking["flagged"], "index"].tolist())
        in_top.append(len(top & set(flipped.tolist())))
        flagged_right.append(len(flagged & set(flipped.tolist())))
        flagged_all.append(len(flagged))
        print(f"trial {trial}: {in_top[-1]} of {args.flips} in the top {args.flips}; confident learning "
              f"flags {flagged_all[-1]}, {flagged_right[-1]} of them flipped")
    print(f"recovered_in_top={statistics.mean(in_top) / args.flips:.1%}")
    print(f"flagged_precision={sum(flagged_right) / sum(flagged_all):.1%} "
          f"flagged_recall={sum(flagged_right) / (args.flips * args.trials):.1%}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/suspect_recovery.py"))
