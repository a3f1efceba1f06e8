"""The dashboard's one TensorFlow thread: readings before looks, superseded looks dropped."""

import threading
import time

from pages.parts import serving


def test_a_reading_goes_before_waiting_looks_and_a_superseded_look_is_dropped():
    order, gate = [], threading.Event()
    results = {}

    def blocker():
        gate.wait(10)
        order.append("blocker")

    def call(name, function, *args, **options):
        thread = threading.Thread(target=lambda: results.__setitem__(name, function(*args, **options)),
                                  daemon=True)
        thread.start()
        time.sleep(0.05)  # each call queued after the one before
        return thread

    threads = [call("blocker", serving.in_tensorflow_thread, blocker),  # holds the thread
               call("old look", serving.after_readings, order.append, "old look", visitor="a"),
               call("other look", serving.after_readings, order.append, "other look", visitor="b"),
               call("new look", serving.after_readings, order.append, "new look", visitor="a"),
               call("reading", serving.in_tensorflow_thread, order.append, "reading")]
    gate.set()
    for thread in threads:
        thread.join(10)
    assert order == ["blocker", "reading", "other look", "new look"]
    assert results["old look"] is None  # its visitor drew again before it started
