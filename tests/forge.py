"""Runs written by hand for store tests: well-formed ones, and the ways a stored run can be wrong
while still matching its manifest (the manifest is resealed after each damage)."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from mnist_core.configs import RunConfig
from mnist_core.store import COMMITTED_STORE, MANIFEST, RUN_FILES, RunStore, sha256_file

ERRORS = 10  # a forged run gets 10 test images wrong (test accuracy 0.999)


def write_small_run(folder: Path, epochs: int = 1) -> None:
    """The files of a well-formed run (all but config.json, which the store writes)."""
    metrics = {"train_loss": 0.1, "train_accuracy": 0.99, "train_error": 0.01, "test_loss": 0.2,
               "test_accuracy": 1 - ERRORS / 10000, "test_error": ERRORS / 10000, "param_count": 100,
               "epochs_trained": epochs, "wall_time_s": 1.0, "trainer": "forged", "train_images": 100}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    rows = "\n".join(f"{e},0.5,0.9,0.6,0.85" for e in range(1, epochs + 1))
    (folder / "history.csv").write_text(f"epoch,loss,accuracy,val_loss,val_accuracy\n{rows}\n")
    np.savez_compressed(folder / "predictions.npz", probabilities=np.full((10000, 10), 0.1, np.float16))
    np.savez_compressed(folder / "errors.npz", index=np.arange(ERRORS, dtype=np.int32),
                        image=np.zeros((ERRORS, 28, 28), np.uint8), true=np.zeros(ERRORS, np.uint8),
                        predicted=np.ones(ERRORS, np.uint8), confidence=np.full(ERRORS, 0.9, np.float16),
                        true_probability=np.full(ERRORS, 0.05, np.float16))
    with zipfile.ZipFile(folder / "model.keras", "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"")


def reseal(folder: Path) -> None:
    """Rewrite the manifest so it matches the files as they are now."""
    files = {name: {"size": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)}
             for name in RUN_FILES}
    (folder / MANIFEST).write_text(json.dumps({"files": files}))


def copy_of_committed(store: RunStore, source_key: str, config: RunConfig) -> Path:
    """A committed run's files filed under another config (a new key) in `store`."""
    source = COMMITTED_STORE / source_key
    fingerprint = json.loads((source / "config.json").read_text())["data_fingerprint"]
    key = config.key(fingerprint)
    folder = store.root / key
    shutil.copytree(source, folder)
    (folder / "config.json").write_text(json.dumps(
        {"config": config.to_dict(), "data_fingerprint": fingerprint, "key": key}))
    reseal(folder)
    return folder


def _edit_json(name, change):
    def damage(folder):
        data = json.loads((folder / name).read_text())
        change(data)
        (folder / name).write_text(json.dumps(data))
    return damage


def _nested(depth: int):
    return json.loads("[" * depth + "]" * depth)


def _replace_npz(name, **arrays):
    def damage(folder):
        with np.load(folder / name, allow_pickle=False) as npz:
            content = {key: npz[key] for key in npz.files}
        content.update(arrays)
        np.savez(folder / name, **content)  # object arrays are pickled: a reader must refuse them
    return damage


def _history_without_val_loss(folder):
    lines = (folder / "history.csv").read_text().splitlines()
    kept = [",".join(cell for i, cell in enumerate(line.split(",")) if i != 3) for line in lines]
    (folder / "history.csv").write_text("\n".join(kept) + "\n")


def _model_of(other_key):
    def damage(folder):
        shutil.copy(COMMITTED_STORE / other_key / "model.keras", folder / "model.keras")
    return damage


def _manifest_brackets(folder):
    (folder / MANIFEST).write_text("[" * 100000 + "]" * 100000)


def _manifest_fifo(folder):
    (folder / MANIFEST).unlink()
    os.mkfifo(folder / MANIFEST)  # opened as a file, it would block every reader


def _model_link_to_dev_zero(folder):
    (folder / "model.keras").unlink()
    os.symlink("/dev/zero", folder / "model.keras")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["model.keras"]["size"] = 0  # hashing it would read forever
    (folder / MANIFEST).write_text(json.dumps(manifest))


# name -> change to a run folder; every change but those in UNSEALED is resealed afterwards
DAMAGES = {
    "metrics without wall_time_s": _edit_json("metrics.json", lambda m: m.pop("wall_time_s")),
    "string test_accuracy": _edit_json("metrics.json", lambda m: m.update(test_accuracy="0.99")),
    "nested metrics": _edit_json("metrics.json", lambda m: m.update(versions=_nested(900))),
    "metrics a list": _edit_json("metrics.json", lambda m: m.clear()),
    "errors.npz object array": _replace_npz("errors.npz", index=np.array([1, "x", None], dtype=object)),
    "errors of unequal length": _replace_npz("errors.npz", true=np.zeros(3, np.uint8)),
    "predictions of wrong shape": _replace_npz("predictions.npz",
                                               probabilities=np.zeros((10, 10), np.float16)),
    "predictions with NaN": _replace_npz("predictions.npz",
                                         probabilities=np.full((10000, 10), np.nan, np.float16)),
    "history without val_loss": _history_without_val_loss,
    "config with a list fingerprint": _edit_json("config.json", lambda c: c.update(data_fingerprint=[1])),
    "manifest of 100000 brackets": _manifest_brackets,
    "errors with a true label of -1": _replace_npz("errors.npz", true=np.full(ERRORS, -1, np.int64)),
    "manifest a FIFO": _manifest_fifo,
    "model a link to /dev/zero": _model_link_to_dev_zero,
}
UNSEALED = {"manifest of 100000 brackets", "manifest a FIFO", "model a link to /dev/zero"}


def damage(folder: Path, kind: str) -> None:
    DAMAGES[kind](folder)
    if kind not in UNSEALED:
        reseal(folder)


def wrong_model(folder: Path, other_key: str) -> None:
    """Put another run's model.keras (another architecture) in `folder`, resealed."""
    _model_of(other_key)(folder)
    reseal(folder)
