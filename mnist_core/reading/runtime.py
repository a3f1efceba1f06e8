"""Reading with ONNX Runtime: every model a reading uses, from the model.onnx stored beside its
model.keras (mnist_core.reading.onnx_export), with no TensorFlow in the process. Importing
TensorFlow takes 5-17 s here and a Keras call ~40 ms a model; ONNX Runtime loads the four named
models in well under a second and reads a drawing with each in about a millisecond.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..safe_read import read_bytes
from .onnx_export import EMBEDDING, INPUT, KERAS_SHA256, LOGITS, onnx_file

MAX_ONNX_BYTES = 64 * 2 ** 20


class ModelFileError(ValueError):
    """A model.onnx that ONNX Runtime cannot load, or not with the inputs and outputs a reader needs."""


def session(path: Path, keras_sha256: str, onnx_sha256: str | None = None):
    """An ONNX Runtime session of one model's ONNX file, which must name `keras_sha256` (the
    run's model.keras) in its metadata and, when the run's manifest lists it, match `onnx_sha256`;
    its inputs and outputs checked. One thread: a reading is one image, more only add start-up."""
    import onnxruntime as ort

    data = read_bytes(path, MAX_ONNX_BYTES)
    if onnx_sha256 is not None and hashlib.sha256(data).hexdigest() != onnx_sha256:
        raise ModelFileError(f"{path.name} does not match its sha256 in the manifest")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        loaded = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own exception types for a bad file
        raise ModelFileError(f"{path.name} cannot be loaded by ONNX Runtime ({exc})") from None
    if loaded.get_modelmeta().custom_metadata_map.get(KERAS_SHA256) != keras_sha256:
        raise ModelFileError(f"{path.name} was not made from this run's model.keras")
    inputs = {i.name: i.shape for i in loaded.get_inputs()}
    outputs = {o.name: o.shape for o in loaded.get_outputs()}
    if list(inputs) != [INPUT] or inputs[INPUT][1:] != [28, 28] or set(outputs) != {LOGITS, EMBEDDING} \
            or outputs[LOGITS][1:] != [10]:
        raise ModelFileError(f"{path.name} does not map (N, 28, 28) images to (N, 10) logits")
    return loaded


def predictor(runs: dict, stores, embedding_of: str | None = None):
    """The same interface as mnist_core.reading.predict.predictor, from stored runs {name: Run}
    that have their ONNX model (ModelFileError if one has none): a function from a (N, 28, 28)
    batch to ({name: logits}, the penultimate layer's output of model `embedding_of`, or None)."""
    sessions = {}
    for name, run in runs.items():
        path = onnx_file(stores, run)
        if path is None:
            raise ModelFileError(f"{name} has no ONNX model yet: `mnist-lab data onnx --store` makes it")
        sessions[name] = session(path, run.keras_sha256, run.onnx_sha256 if path == run.onnx_path else None)

    def predict(batch) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        feed = {INPUT: np.ascontiguousarray(batch, dtype=np.float32)}
        logits, embedding = {}, None
        for name, loaded in sessions.items():
            wanted = [LOGITS, EMBEDDING] if name == embedding_of else [LOGITS]
            found = loaded.run(wanted, feed)
            logits[name] = found[0]
            if name == embedding_of:
                embedding = found[1]
        return logits, embedding

    predict(np.zeros((1, 28, 28), np.float32))  # the first run allocates: not on the first drawing
    return predict
