"""Which MNIST test labels are likely wrong, and what a person decided about them.

The 10,000 test images are ranked by how likely their given label is wrong, by confident
learning (cleanlab) over the mean of several stored runs' test-set probabilities. The runs
never trained on the test set, so their votes are out of sample. Needs neither MNIST nor
TensorFlow: standard MNIST's test labels are committed (cached_results/test_labels.npz,
checked against their sha256).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock

from .data import STANDARD_FINGERPRINT, MNISTError, load_mnist, mnist_available
from .safe_read import UnsafeFile, read_json, read_npz
from .safe_write import replacing, write_atomic
from .store import COMMITTED_STORE, Run, StoreError, check_lock_file

log = logging.getLogger(__name__)

VERDICTS = ("label wrong", "label fine", "unsure")
VERDICT_FILE = "suspect_verdicts.json"
VERDICT_KEY = re.compile(r"[0-9]{1,5}")  # ASCII digits only: str.isdigit also takes "²" and "٣"
TEST_IMAGES = 10_000
TEST_LABELS_FILE = COMMITTED_STORE / "test_labels.npz"  # standard MNIST's, 10 kB
TEST_LABELS_SHA256 = "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5"
FALLBACK_VOTERS = 3

if TYPE_CHECKING:
    import pandas as pd


def default_voters(runs, named: dict[str, Run]) -> dict[str, Run]:
    """Every stored CNN run on the named runs' data, strongest first, under its catalog name if it
    has one: benchmarks/suspect_ranking.py finds them the best ranking on random, confusable
    and ambiguous label noise. With fewer than two CNN runs, the strongest three named runs."""
    fingerprints = {run.data_fingerprint for run in named.values()}
    name_of = {run.key: name for name, run in named.items()}
    cnns = sorted((run for run in runs if run.config.model != "mlp"
                   and (not fingerprints or run.data_fingerprint in fingerprints)),
                  key=lambda run: (-run.test_accuracy, run.key))
    if len(cnns) >= 2:
        return {name_of.get(run.key, run.config.label): run for run in cnns}
    return dict(sorted(named.items(), key=lambda item: -item[1].test_accuracy)[:FALLBACK_VOTERS])


def write_test_labels(data, path: Path = TEST_LABELS_FILE) -> Path:
    """Write the committed copy of standard MNIST's test labels (from `data`, checked)."""
    labels = np.asarray(data.y_test, np.uint8)
    if hashlib.sha256(labels.tobytes()).hexdigest() != TEST_LABELS_SHA256:
        raise ValueError("these are not standard MNIST's test labels")
    with replacing(path) as out:
        np.savez_compressed(out, labels=labels)
    return path


@lru_cache(maxsize=1)
def standard_test_labels(path: Path = TEST_LABELS_FILE) -> np.ndarray:
    """Standard MNIST's 10,000 test labels, from the committed copy, checked against their hash."""
    (labels,) = read_npz(path, {"labels": ("u", 1)}, TEST_IMAGES).values()
    if labels.shape != (TEST_IMAGES,) or hashlib.sha256(labels.astype(np.uint8).tobytes()).hexdigest() \
            != TEST_LABELS_SHA256:
        raise UnsafeFile(f"{path.name} does not hold standard MNIST's test labels")
    labels = labels.astype(np.int64)
    labels.flags.writeable = False
    return labels


def given_labels(run: Run) -> np.ndarray:
    """The test labels `run` was tested on, known exactly, never inferred from its predictions:
    standard MNIST's (the committed copy) for a run trained on it, else those of the MNIST at
    hand when it is the run's data. ValueError, saying what to do, when neither is the case."""
    if run.data_fingerprint == STANDARD_FINGERPRINT:
        return standard_test_labels()
    if mnist_available():
        try:
            data = load_mnist()
        except MNISTError:
            data = None
        if data is not None and data.fingerprint == run.data_fingerprint:
            return data.y_test.astype(np.int64)
    raise ValueError(f"run {run.key[:12]} was trained on an MNIST other than the standard one, and "
                     "that MNIST is not at hand: set MNIST_PATH to it, or choose other runs")


def rank_labels(probabilities: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Every image, most suspect first: given and suggested label, label quality (cleanlab's
    self-confidence: the probability the models give the given label), and whether confident
    learning flags it as a label issue."""
    import cleanlab.filter
    import cleanlab.rank
    import pandas as pd  # here: reading a drawing needs no pandas (0.4 s to import)

    sums = probabilities.sum(axis=1, keepdims=True)
    if not np.isfinite(probabilities).all() or (sums <= 0).any():
        raise ValueError("the voting runs give some test image no probability at all")
    probabilities = probabilities / sums
    quality = cleanlab.rank.get_label_quality_scores(labels, probabilities, method="self_confidence")
    # n_jobs=1: cleanlab otherwise forks a process pool, which can hang a process that runs
    # threads (the dashboard's server hung here in CI); the result does not depend on it.
    flagged = cleanlab.filter.find_label_issues(labels, probabilities, n_jobs=1)
    suggested = probabilities.argmax(1)
    table = pd.DataFrame({"index": np.arange(len(labels)), "given": labels.astype(int),
                          "suggested": suggested.astype(int), "quality": quality.astype(float),
                          "confidence": probabilities[np.arange(len(labels)), suggested].astype(float),
                          "flagged": flagged.astype(bool)})
    table = table.sort_values(["quality", "index"], kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def rank_suspects(voters: dict[str, Run]) -> pd.DataFrame:
    """`rank_labels` over the voters' mean probabilities, with each voter's reading of each
    image ("votes": {name: [digit, probability]}) and how many agree with the suggestion."""

    if not voters:
        raise ValueError("choose at least one run to vote")
    names = list(voters)
    for name in names[1:]:
        if voters[name].data_fingerprint != voters[names[0]].data_fingerprint:
            raise ValueError(f"{name} was trained and tested on another MNIST than {names[0]} (their "
                             "data fingerprints differ): choose runs trained on the same data")
    labels = given_labels(voters[names[0]])
    each = {name: voters[name].predictions().astype(np.float64) for name in names}
    table = rank_labels(np.mean(list(each.values()), axis=0), labels)
    rows = table["index"].to_numpy()
    readings = {name: (p.argmax(1)[rows], p.max(1)[rows]) for name, p in each.items()}
    suggested = table["suggested"].to_numpy()
    table["agree"] = sum((digits == suggested).astype(int) for digits, _ in readings.values())
    table["votes"] = [{name: [int(digits[i]), round(float(sure[i]), 4)]
                       for name, (digits, sure) in readings.items()} for i in range(len(table))]
    return table


class Verdicts:
    """A person's verdict per test image ("label wrong", "label fine", "unsure"), kept as JSON in
    a store folder: written whole and renamed into place, under a lock so two sessions marking
    at once lose nothing. A damaged file is reported, set aside and read as empty; a file this
    process cannot read (another user's) is never replaced: marking refuses (VerdictsUnreadable)."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / VERDICT_FILE

    def load(self) -> dict[int, str]:
        """The verdicts, or {} if there are none or the file is damaged (reported)."""
        try:
            return self._read()
        except VerdictsUnreadable as exc:
            log.warning("%s", exc)
            return {}
        except ValueError as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return {}

    def _read(self) -> dict[int, str]:
        """Raises VerdictsUnreadable (cannot be read here) or UnsafeFile (damaged)."""
        try:
            data = read_json(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise VerdictsUnreadable(f"{self.path} cannot be read ({exc.strerror or exc}); verdicts "
                                     "are not saved there: ask its owner to make it readable, or "
                                     "use a store of your own") from None
        if not isinstance(data, dict):
            raise UnsafeFile("not a map of test index to verdict")
        verdicts, skipped = {}, []
        for key, value in data.items():
            if isinstance(key, str) and VERDICT_KEY.fullmatch(key) and int(key) < TEST_IMAGES \
                    and value in VERDICTS:
                verdicts[int(key)] = value
            else:
                skipped.append(key)
        if skipped:
            log.warning("%s: skipped %d entr%s that are not a test index (0-%d) with a verdict, "
                        "e.g. %.40r", self.path, len(skipped), "y" if len(skipped) == 1 else "ies",
                        TEST_IMAGES - 1, skipped[0])
        return verdicts

    def set(self, index: int, verdict: str | None) -> dict[int, str]:
        """Record (or with None, forget) the verdict on test image `index`; returns them all.
        Raises VerdictsUnreadable, changing nothing, if the file exists but cannot be read here."""
        if not 0 <= int(index) < TEST_IMAGES:
            raise ValueError(f"test image index must be 0..{TEST_IMAGES - 1}, got {index}")
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(VERDICT_FILE + ".lock")
        try:
            check_lock_file(lock_path)
            with FileLock(str(lock_path), timeout=10):
                verdicts = self._current()
                if verdict is None:
                    verdicts.pop(int(index), None)
                else:
                    verdicts[int(index)] = verdict
                write_atomic(self.path, json.dumps({str(k): v for k, v in sorted(verdicts.items())},
                                                   indent=1))
        except (StoreError, OSError) as exc:  # NotReplaced and filelock's Timeout among them
            raise VerdictsUnreadable(f"verdicts cannot be saved in {self.path.parent} ({exc})") from None
        return verdicts

    def _current(self) -> dict[int, str]:
        """The verdicts to add to; a damaged file is kept aside (…json.damaged) before it is replaced."""
        try:
            return self._read()
        except UnsafeFile as exc:
            aside = self.path.with_name(VERDICT_FILE + ".damaged")
            log.warning("%s is damaged (%s); kept as %s and started afresh", self.path, exc, aside.name)
            os.replace(self.path, aside)
            return {}


class VerdictsUnreadable(OSError):
    """The verdict file exists but cannot be read (or written) here; it is left as it is."""


def verdicts_csv(ranking: pd.DataFrame, verdicts: dict[int, str]) -> str:
    """index, given, suggested, verdict: one row per image with a verdict."""
    by_index = ranking.set_index("index")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "given", "suggested", "verdict"])
    for index, verdict in sorted(verdicts.items()):
        row = by_index.loc[index]
        writer.writerow([index, int(row["given"]), int(row["suggested"]), verdict])
    return out.getvalue()


def predicted_labels(run: Run) -> np.ndarray:
    """The digit `run` predicts for each test image, from its stored probabilities."""
    return run.predictions().astype(np.float64).argmax(1)


def accuracy_without(predicted: np.ndarray, labels: np.ndarray, set_aside: set[int]) -> float:
    """Test accuracy of `predicted` (predicted_labels) on the test images not in `set_aside`
    (not the standard figure)."""
    keep = np.ones(len(labels), dtype=bool)
    keep[sorted(set_aside)] = False
    return float((predicted[keep] == labels[keep]).mean())
