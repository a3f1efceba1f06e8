"""A run's model as ONNX, for ONNX Runtime to read with (mnist_core.reading.runtime): the
inference graph of its Keras model (the improved CNN's random augmentation layers, inactive at
inference, left out: ONNX Runtime has no kernel for them), with the penultimate layer as a second
output for the not-a-digit check, and the sha256 of the model.keras it was made from in its
metadata. Made with tf2onnx, the converter Keras's own export uses: this is the one module of the
read path that needs TensorFlow, and only to make the file, once per run.

Where it is kept: beside model.keras, listed in the run's manifest (the committed named runs ship
theirs, `mnist-lab data onnx`); for a run in a store this process may not write (the committed
results), in the user store's `.onnx/` folder under the .keras file's sha256.
"""

from __future__ import annotations

from pathlib import Path

from ..safe_write import write_atomic
from ..store import Run, StoreChain, StoreError

OPSET = 17
INPUT, LOGITS, EMBEDDING = "image", "logits", "embedding"
KERAS_SHA256 = "keras_sha256"  # the metadata entry that ties the file to its model.keras


def onnx_bytes(model, keras_sha256: str) -> bytes:
    """The ONNX file of Keras `model` ((N, 28, 28) -> logits), naming `keras_sha256` in its metadata."""
    import keras
    import tensorflow as tf
    import tf2onnx

    kept = [layer for layer in model.layers if not type(layer).__name__.startswith("Random")]
    image = keras.Input((28, 28), name=INPUT)
    outputs = [image]
    for layer in kept:
        outputs.append(layer(outputs[-1]))
    inference = keras.Model(image, [outputs[-1], outputs[-2]])

    def forward(batch):
        logits, embedding = inference(batch, training=False)
        return {LOGITS: logits, EMBEDDING: embedding}

    spec = (tf.TensorSpec((None, 28, 28), tf.float32, name=INPUT),)
    proto, _ = tf2onnx.convert.from_function(tf.function(forward, autograph=False),
                                             input_signature=spec, opset=OPSET)
    entry = proto.metadata_props.add()
    entry.key, entry.value = KERAS_SHA256, keras_sha256
    return proto.SerializeToString()


def cached_path(stores: StoreChain, run: Run) -> Path:
    return stores.writable.root / ".onnx" / f"{run.keras_sha256}.onnx"


def onnx_file(stores: StoreChain, run: Run) -> Path | None:
    """Where `run`'s ONNX model is, or None if it has none yet."""
    if run.onnx_path is not None:
        return run.onnx_path
    cached = cached_path(stores, run)
    return cached if cached.is_file() else None


def export(stores: StoreChain, run: Run) -> Path:
    """`run`'s ONNX model, made now if it has none (TensorFlow), and where it is kept."""
    found = onnx_file(stores, run)
    if found is not None:
        return found
    data = onnx_bytes(run.load_model(), run.keras_sha256)
    store = next((s for s in stores.all if s.root == run.path.parent), None)
    if store is not None and not store.read_only:
        return store.add_onnx(run.key, data, run.keras_sha256).onnx_path
    target = cached_path(stores, run)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
    except OSError as exc:
        raise StoreError(f"cannot write {target} ({exc.strerror or exc}); pass a writable --store") from None
    return target
