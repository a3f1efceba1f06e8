"""What serving many visitors at once needs from the runtime, in one place.

Streamlit runs every script run in a new thread and, after each, calls
keras.backend.clear_session(), which runs a full gc.collect() and drops TensorFlow's
per-thread state. With TensorFlow and the models loaded, ten people drawing at once turned
that into seconds of queueing (benchmarks/draw_load.py). So:
- every prediction runs in one long-lived thread, where TensorFlow's per-thread state is
  rebuilt cheaply, and callers wait for it without holding the GIL;
- once the models are loaded, the heap is frozen (gc.freeze()), so clear_session's
  collection skips TensorFlow's object graph;
- .streamlit/config.toml turns off Streamlit's own gc.collect() after every run
  (runner.postScriptGC) and source-file polling.
"""

from __future__ import annotations

import gc
from concurrent.futures import ThreadPoolExecutor

_tensorflow_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tensorflow")


def in_tensorflow_thread(function, *args):
    """`function(*args)`, run in the one thread that does all of the dashboard's TensorFlow work."""
    return _tensorflow_thread.submit(function, *args).result()


def freeze_heap() -> None:
    """Move everything alive now (TensorFlow, the models) out of the garbage collector's way."""
    gc.freeze()
