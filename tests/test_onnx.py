"""Readings run on ONNX Runtime: each model's ONNX file reads as its Keras model does, is tied to
its model.keras and verified like a run's other files, and `classify` never imports TensorFlow."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax

from mnist_core.catalog import named_runs
from mnist_core.data import STANDARD_FINGERPRINT
from mnist_core.reading import onnx_export, runtime
from mnist_core.store import COMMITTED_STORE, RunStore, StoreChain
from mnist_core.sweeps import ensure_runs

REPO = Path(__file__).resolve().parent.parent
NAMED = {"baseline_mlp", "best_width_mlp", "reference_cnn", "improved_cnn"}


def committed() -> StoreChain:
    return StoreChain(RunStore(COMMITTED_STORE, read_only=True))


@pytest.mark.slow
def test_every_named_models_onnx_file_reads_the_10000_test_images_as_its_keras_model(mnist):
    runs = named_runs(committed(), STANDARD_FINGERPRINT)
    assert set(runs) == NAMED and all(run.onnx_path is not None for run in runs.values())
    images = (mnist.x_test.astype(np.float32) / 255.0)
    predict = runtime.predictor(runs, committed(), "improved_cnn")
    onnx_logits, embedding = predict(images)
    assert embedding.shape == (10_000, 128)
    for name, run in runs.items():
        keras_logits = run.load_model().predict(images, batch_size=1000, verbose=0)
        difference = np.abs(softmax(onnx_logits[name], axis=1) - softmax(keras_logits, axis=1)).max()
        assert difference < 1e-5, (name, difference)
        assert (onnx_logits[name].argmax(axis=1) == mnist.y_test).mean() == pytest.approx(run.test_accuracy,
                                                                                         abs=1e-4)


def test_a_changed_onnx_file_fails_its_run_and_a_foreign_one_is_refused(tmp_path):
    source = next(run for name, run in named_runs(committed(), STANDARD_FINGERPRINT).items()
                  if name == "baseline_mlp")
    root = tmp_path / "store"
    shutil.copytree(source.path, root / source.key)
    store = RunStore(root)
    run = store.get(source.key)
    assert run is not None and run.onnx_path is not None
    stores = StoreChain(store)
    runtime.session(run.onnx_path, run.keras_sha256, run.onnx_sha256)
    with pytest.raises(runtime.ModelFileError, match="not made from this run's model.keras"):
        runtime.session(run.onnx_path, "0" * 64)
    manifest = json.loads((run.path / "manifest.json").read_text())
    manifest["files"]["model.onnx"]["keras_sha256"] = "1" * 64
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    assert store.get(run.key) is None  # a manifest tying it to another model.keras: not valid
    manifest["files"]["model.onnx"]["keras_sha256"] = run.keras_sha256
    (run.path / "manifest.json").write_text(json.dumps(manifest))
    data = bytearray(run.onnx_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    run.onnx_path.write_bytes(bytes(data))
    assert store.get(run.key) is None and stores.get(run.key) is None


@pytest.mark.slow
def test_a_run_without_onnx_gets_it_on_first_use_beside_it_or_in_the_user_store(mnist, tmp_path):
    from mnist_core.configs import RunConfig

    stores = StoreChain(RunStore(tmp_path / "store"))
    (run,) = ensure_runs([RunConfig(hidden=(25, 15), epochs=1, limit=1000)], mnist, stores, fused=False,
                         progress=False)
    if run.onnx_path is not None:  # trained runs may come with it: take it away to make it again
        pytest.skip("runs are published with their ONNX model")
    path = onnx_export.export(stores, run)
    run = stores.get(run.key)
    assert path == run.onnx_path and run.onnx_sha256  # beside it, in its manifest
    read_only = StoreChain(RunStore(tmp_path / "user"), [RunStore(tmp_path / "store", read_only=True)])
    (other,) = ensure_runs([RunConfig(hidden=(25, 15), epochs=1, limit=1000, seed=1)], mnist,
                           StoreChain(RunStore(tmp_path / "store")), fused=False, progress=False)
    other = read_only.get(other.key)
    cached = onnx_export.export(read_only, other)
    assert cached.parent == tmp_path / "user" / ".onnx" and read_only.get(other.key).onnx_path is None
    x = mnist.x_test[:200].astype(np.float32) / 255.0
    logits, _ = runtime.predictor({"a": run, "b": other}, read_only, None)(x)
    for name, source in (("a", run), ("b", other)):
        keras = source.load_model().predict(x, verbose=0)
        assert np.abs(softmax(logits[name], axis=1) - softmax(keras, axis=1)).max() < 1e-5


def test_classify_reads_with_the_committed_onnx_models_and_never_imports_tensorflow(tmp_path):
    from PIL import Image, ImageDraw

    image = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(image).line([(60, 60), (220, 60), (120, 240)], fill=255, width=22)
    image.save(tmp_path / "seven.png")
    code = ("import sys, json; from mnist_core.__main__ import main; status = main(['classify', "
            f"{str(tmp_path / 'seven.png')!r}, '--json']); "
            "print(json.dumps(sorted(m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules)), "
            "file=sys.stderr); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MNIST_LAB_STORE": str(tmp_path / "store")})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
    (result,) = json.loads(done.stdout)
    assert {name: r["digit"] for name, r in result["models"].items()} == dict.fromkeys(NAMED, 7)
