"""The whole study timed in one go: `python -m mnist_core reproduce` into an empty store.

    nohup python benchmarks/reproduce_time.py [--backend ray] > reproduce_time.log 2>&1 &

Runs `reproduce` (3 seeds and the improved CNN's seed 0, as README's table) on this machine
into a new temporary store, ignoring cached_results/ (--no-committed), so every run is
trained. Prints each step's wall time as it ends (from the "== step" lines reproduce prints),
the total, and then the quality check: every new run against the committed run of the same
key (same config, same MNIST), per experiment (seeds pooled): the new mean test accuracy, the
committed mean and the committed seeds' range. It takes well over an hour on 2 cores: run it
in the background on an idle machine. Never part of the tests. With `--backend ray`, reproduce
starts Ray on this machine and trains everything as one pool of single-thread tasks, as many
at once as there are CPUs (see README, Scale out).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnist_core.catalog import runs_table  # noqa: E402
from mnist_core.store import COMMITTED_STORE, RunStore  # noqa: E402


def clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes // 60:d}:{minutes % 60:02d}:{seconds:02d}"


def timed_reproduce(store: Path, seeds: str, improved_seeds: str, data: str | None, backend: str) -> list:
    """Run reproduce; [(step title, seconds)] in order, printed as each step ends."""
    command = [sys.executable, "-m", "mnist_core", "reproduce", "--store", str(store), "--no-committed",
               "--quiet", "--backend", backend, "--seeds", seeds, "--improved-seeds", improved_seeds]
    if data:
        command += ["--data", data]
    steps, title, started = [], None, time.perf_counter()
    begun = started

    def close_step(now: float) -> None:
        if title is not None:
            steps.append((title, now - begun))
            print(f"[{clock(now - started)}] {clock(now - begun)}  {title}", flush=True)

    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            print("   ", line.rstrip(), flush=True)
            if line.startswith("== "):
                now = time.perf_counter()
                close_step(now)
                title, begun = line[3:].strip(), now
    close_step(time.perf_counter())
    if child.returncode != 0:
        sys.exit(f"reproduce_time: reproduce exited with status {child.returncode} (see above)")
    return steps


def quality(store: Path) -> None:
    """Per experiment (the config without its seed): new runs against the committed ones."""
    new = runs_table(RunStore(store, read_only=True).runs())
    committed = runs_table(RunStore(COMMITTED_STORE, read_only=True).runs())
    committed = committed[committed["key"].isin(set(new["key"]))]
    group = ["model", "hidden", "l2", "epochs"]
    ours = new.groupby(group, dropna=False)["test_accuracy"].agg(["mean", "count"])
    before = committed.groupby(group, dropna=False)["test_accuracy"].agg(["mean", "min", "max", "count"])
    print(f"\n{'experiment':34s} {'new (seeds)':>14s} {'committed (seeds)':>18s} "
          f"{'committed range':>18s}  verdict")
    inside = spread = 0
    for index, row in ours.iterrows():
        model, hidden, l2, epochs = index
        name = f"{model} {hidden or ''} λ={l2:g} {epochs} ep".replace("  ", " ")
        if index not in before.index:
            print(f"{name:34s} {row['mean']:10.2%} ({row['count']:.0f})  not committed")
            continue
        old = before.loc[index]
        within = old["min"] - 1e-9 <= row["mean"] <= old["max"] + 1e-9
        if old["count"] == 1:  # one committed seed: no spread to be within
            verdict = f"{row['mean'] - old['mean']:+.2%} (one seed)"
        else:
            verdict = "within" if within else f"OUTSIDE by {row['mean'] - old['mean']:+.2%}"
        inside += within and old["count"] > 1
        spread += old["count"] > 1
        print(f"{name:34s} {row['mean']:10.2%} ({row['count']:.0f})  {old['mean']:12.2%} ({old['count']:.0f})"
              f"  {old['min']:.2%}..{old['max']:.2%}  {verdict}")
    print(f"experiments whose new mean lies within the committed seeds' range: {inside} of {spread} "
          f"(the other {len(ours) - spread} have one committed seed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--improved-seeds", default="0")
    parser.add_argument("--data", help="MNIST file (default: $MNIST_PATH, as reproduce finds it)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="ray: a Ray instance on this machine, one single-thread task per CPU at once")
    parser.add_argument("--keep", metavar="DIR", help="train into DIR (kept) instead of a temporary folder")
    args = parser.parse_args()
    print(f"cores={os.cpu_count()} started {time.strftime('%Y-%m-%d %H:%M:%S')} seeds={args.seeds} "
          f"improved_seeds={args.improved_seeds} backend={args.backend}", flush=True)
    with tempfile.TemporaryDirectory() as temporary:
        store = Path(args.keep) if args.keep else Path(temporary) / "store"
        started = time.perf_counter()
        steps = timed_reproduce(store, args.seeds, args.improved_seeds, args.data, args.backend)
        total = time.perf_counter() - started
        print(f"\n{'step':72s} {'wall time':>10s}")
        for title, seconds in steps:
            print(f"{title:72s} {clock(seconds):>10s}")
        print(f"{'total (reproduce, start to end)':72s} {clock(total):>10s}")
        quality(store)
    print(f"reproduce_minutes={total / 60:.1f}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/reproduce_time.py"))
