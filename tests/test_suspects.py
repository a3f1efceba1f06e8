"""Suspect labels: confident learning over the committed runs' test probabilities, and verdicts."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mnist_core.catalog import named_runs
from mnist_core.data import STANDARD_FINGERPRINT
from mnist_core.store import StoreChain
from mnist_core.suspects import (
    Verdicts,
    accuracy_without,
    default_voters,
    given_labels,
    predicted_labels,
    rank_labels,
    rank_suspects,
    verdicts_csv,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def voters():
    stores = StoreChain.default(None)
    return default_voters(stores.runs(), named_runs(stores, STANDARD_FINGERPRINT))


def test_the_default_voters_are_every_stored_cnn_run_strongest_first(voters):
    assert len(voters) == 7 and list(voters)[0] == "improved_cnn" and "reference_cnn" in voters
    assert all(run.config.model != "mlp" for run in voters.values())
    accuracies = [run.test_accuracy for run in voters.values()]
    assert accuracies == sorted(accuracies, reverse=True)
    named = named_runs(StoreChain.default(None), STANDARD_FINGERPRINT)
    mlps_only = [run for run in StoreChain.default(None).runs() if run.config.model == "mlp"]
    assert list(default_voters(mlps_only, named)) == ["improved_cnn", "reference_cnn", "best_width_mlp"]


def test_the_given_labels_read_back_from_a_run_are_mnists(voters, mnist):
    for run in voters.values():
        np.testing.assert_array_equal(given_labels(run), mnist.y_test)


def test_every_stored_run_can_vote_with_every_other():
    """Labels are known exactly, never read back from predictions (a run whose probabilities
    tie on one image made "select all" fail with a false message)."""
    runs = StoreChain.default(None).runs()
    assert len(runs) >= 60
    ranking = rank_suspects({run.key: run for run in runs})
    assert len(ranking) == 10_000 and ranking["agree"].max() == len(runs)


def test_a_damaged_committed_label_file_is_refused(tmp_path):
    from mnist_core.safe_read import UnsafeFile
    from mnist_core.suspects import TEST_LABELS_FILE, standard_test_labels

    with np.load(TEST_LABELS_FILE) as npz:
        labels = npz["labels"].copy()
    labels[2454] = (labels[2454] + 1) % 10
    np.savez(tmp_path / "labels.npz", labels=labels)
    with pytest.raises(UnsafeFile, match="does not hold standard MNIST's test labels"):
        standard_test_labels(tmp_path / "labels.npz")


def test_labels_flipped_on_purpose_are_found_at_the_top_of_the_ranking(voters):
    labels = given_labels(voters["improved_cnn"])
    probabilities = np.mean([r.predictions().astype(np.float64) for r in voters.values()], axis=0)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(labels), 100, replace=False)
    noisy = labels.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, 10, len(flipped))) % 10
    ranking = rank_labels(probabilities, noisy)
    found = set(ranking["index"].head(100)) & set(flipped.tolist())
    assert len(found) >= 95  # measured: 99 of 100
    flagged = set(ranking.loc[ranking["flagged"], "index"])
    assert len(flagged & set(flipped.tolist())) >= 95 and len(flagged) <= 110  # measured: 98 of 102


def test_probabilities_that_give_an_image_nothing_are_refused_with_a_reason():
    probabilities = np.full((10, 10), 0.1)
    probabilities[3] = 0.0
    with pytest.raises(ValueError, match="no probability at all"):
        rank_labels(probabilities, np.arange(10) % 10)


def test_the_ranking_names_each_voters_reading(voters):
    ranking = rank_suspects(voters)
    assert len(ranking) == 10_000 and ranking["rank"].tolist() == list(range(1, 10_001))
    first = ranking.iloc[0]
    assert first["given"] != first["suggested"] and first["agree"] == len(voters)
    assert set(first["votes"]) == set(voters)
    assert all(digit == first["suggested"] for digit, _ in first["votes"].values())
    assert ranking["quality"].is_monotonic_increasing


def test_verdicts_persist_are_forgotten_and_export_as_csv(voters, tmp_path):
    book = Verdicts(tmp_path)
    book.set(9729, "label wrong")
    book.set(2597, "unsure")
    book.set(2597, "label fine")
    book.set(4176, "label wrong")
    assert book.set(4176, None) == {9729: "label wrong", 2597: "label fine"}
    assert Verdicts(tmp_path).load() == {9729: "label wrong", 2597: "label fine"}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    ranking = rank_suspects(voters)
    assert verdicts_csv(ranking, Verdicts(tmp_path).load()).splitlines() == [
        "index,given,suggested,verdict", "2597,5,3,label fine", "9729,5,6,label wrong"]
    with pytest.raises(ValueError, match="verdict must be one of"):
        book.set(1, "maybe")
    with pytest.raises(ValueError, match="index"):
        book.set(10_000, "unsure")


@pytest.mark.parametrize("content", ['["label wrong"]', '{"12": "maybe", "x": "unsure", "99999": "unsure"}',
                                     "[" * 5000, "not json", '{"12": {"nested": 1}}'])
def test_a_damaged_verdict_file_is_read_as_empty_not_raised(tmp_path, content):
    (tmp_path / "suspect_verdicts.json").write_text(content)
    assert Verdicts(tmp_path).load() == {}
    assert Verdicts(tmp_path).set(5, "unsure") == {5: "unsure"}  # and can be written over


def test_two_sessions_marking_at_once_lose_nothing(tmp_path):
    threads = [threading.Thread(target=Verdicts(tmp_path).set, args=(i, "unsure"), daemon=True)
               for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(Verdicts(tmp_path).load()) == list(range(20))


def test_accuracy_with_images_set_aside(voters):
    run = voters["improved_cnn"]
    labels = given_labels(run)
    wrong = set(run.errors()["index"][:5].astype(int).tolist())
    predicted = predicted_labels(run)
    assert accuracy_without(predicted, labels, set()) == pytest.approx(run.test_accuracy)
    assert accuracy_without(predicted, labels, wrong) == pytest.approx((9961 - 0) / (10_000 - 5))


def test_the_suspects_command(tmp_path):
    env = {**os.environ, "MNIST_LAB_STORE": str(tmp_path)}
    Verdicts(tmp_path).set(9729, "label wrong")
    out = subprocess.run([sys.executable, "-m", "mnist_core", "suspects", "--json", "--top", "3"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3] and rows[0]["index"] == 9729
    assert rows[0]["verdict"] == "label wrong" and rows[0]["voters"] == 7  # every stored CNN run
    bad = subprocess.run([sys.executable, "-m", "mnist_core", "suspects", "--voters", "nobody"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nobody" in bad.stderr
