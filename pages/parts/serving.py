"""What serving many visitors at once needs from the runtime, in one place.

Streamlit runs every script run in a new thread and, after each, calls
keras.backend.clear_session(), which runs a full gc.collect() and drops TensorFlow's
per-thread state. With TensorFlow and the models loaded, ten people drawing at once turned
that into seconds of queueing (benchmarks/draw_load.py). So:
- every prediction runs in one long-lived thread, where TensorFlow's per-thread state is
  rebuilt cheaply, and callers wait for it without holding the GIL;
- in that thread a reading goes before any look inside a model (a look takes 5-10 readings'
  time), and a look that a newer stroke of the same visitor has made pointless is dropped
  unstarted: ten visitors looking inside at once otherwise had each reading wait behind up
  to ten looks;
- once the models are loaded, the heap is frozen (gc.freeze()), so clear_session's
  collection skips TensorFlow's object graph;
- .streamlit/config.toml turns off Streamlit's own gc.collect() after every run
  (runner.postScriptGC) and source-file polling;
- each stroke's nearest-digit products run on one BLAS thread (mnist_core.reading.neighbours.
  one_blas_thread): OpenBLAS's idle thread otherwise spins ~100 ms after each.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import threading
from concurrent.futures import CancelledError, Future

FIRST, LATER = 0, 1  # readings and everything else; looks inside a model


class _OneThread:
    """One long-lived thread running submitted calls by priority, then in order of arrival."""

    def __init__(self):
        self._queue: list[tuple[int, int, Future, object, tuple]] = []
        self._latest: dict[object, Future] = {}  # per `supersedes` key: the newest call
        self._order = itertools.count()
        self._ready = threading.Condition()
        threading.Thread(target=self._serve, name="tensorflow", daemon=True).start()

    def submit(self, priority: int, supersedes, function, args) -> Future:
        future = Future()
        with self._ready:
            if supersedes is not None:
                older = self._latest.get(supersedes)
                if older is not None:
                    older.cancel()  # if it has not started; its caller was superseded
                self._latest[supersedes] = future
            heapq.heappush(self._queue, (priority, next(self._order), future, function, args))
            self._ready.notify()
        return future

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                _, _, future, function, args = heapq.heappop(self._queue)
                self._latest = {k: f for k, f in self._latest.items() if f is not future}
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as exc:
                future.set_exception(exc)


_tensorflow_thread = _OneThread()


def in_tensorflow_thread(function, *args):
    """`function(*args)`, run in the one thread that does all of the dashboard's TensorFlow work."""
    return _tensorflow_thread.submit(FIRST, None, function, args).result()


def start_in_tensorflow_thread(function, *args) -> Future:
    """`function(*args)` in the same thread, after every waiting reading; returns at once."""
    return _tensorflow_thread.submit(LATER, None, function, args)


def after_readings(function, *args, visitor=None):
    """`function(*args)` in the same thread, after every waiting reading; None if `visitor`
    asked for a newer call of this kind before this one started (their drawing has changed)."""
    try:
        return _tensorflow_thread.submit(LATER, visitor, function, args).result()
    except CancelledError:
        return None


def freeze_heap() -> None:
    """Move everything alive now (TensorFlow, the models) out of the garbage collector's way."""
    gc.freeze()
