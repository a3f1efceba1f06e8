"""How soon "Look inside a model" is ready on a fresh server, in Chromium, for every named model.

    python benchmarks/inside_ready.py [--repeats 3]

Each repeat starts a new `streamlit run app.py` (nothing compiled or read yet), opens the Draw
page as a first visitor and waits for it to load, then times, as a person waits for them:
the toggle's click to "Draw a digit to see inside improved_cnn." (the default model), and for
each other named model, choosing it in "Model to look inside" to "Draw a digit to see inside
<model>.". Nothing is drawn: this is the wait before the first look. Prints each time and,
per model, the median and the slowest over the repeats. Target: under 2 s for every model; the
first look on a fresh server includes TensorFlow's import since readings moved to ONNX Runtime.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.browser import launch_chromium, streamlit_server, wait_until_idle  # noqa: E402

NAMED = ("improved_cnn", "baseline_mlp", "best_width_mlp", "reference_cnn")


def one_server(playwright) -> dict[str, float]:
    """Seconds to the inside view's invitation, per model, on a fresh server."""
    times = {}
    with tempfile.TemporaryDirectory() as folder, \
            streamlit_server(Path(folder) / "store", Path(folder) / "streamlit.log") as url:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(f"{url}/draw")
        page.locator("canvas.upper-canvas").first.wait_for()
        expect(page.get_by_text("Draw a digit on the black canvas")).to_be_visible()
        wait_until_idle(page)
        started = time.monotonic()
        page.get_by_text("Look inside a model").click()
        # the first look on a server waits for TensorFlow's import (the view says so meanwhile)
        expect(page.get_by_text(f"Draw a digit to see inside {NAMED[0]}.")).to_be_visible(timeout=120_000)
        times[NAMED[0]] = time.monotonic() - started
        select = page.get_by_test_id("stSelectbox").filter(has_text="Model to look inside")
        for name in NAMED[1:]:
            wait_until_idle(page)
            select.click()
            option = page.get_by_role("option", name=name, exact=True)
            option.wait_for()
            started = time.monotonic()
            option.click()
            expect(page.get_by_text(f"Draw a digit to see inside {name}.")).to_be_visible(timeout=120_000)
            times[name] = time.monotonic() - started
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = []
    with sync_playwright() as playwright:
        for repeat in range(args.repeats):
            runs.append(one_server(playwright))
            print(f"server {repeat + 1}: " + ", ".join(f"{name} {s:.2f} s" for name, s in runs[-1].items()),
                  flush=True)
    for name in NAMED:
        values = [run[name] for run in runs]
        print(f"{name:16s} median {statistics.median(values):.2f} s, slowest {max(values):.2f} s")
    slowest = max(max(run.values()) for run in runs)
    print(f"inside_view_ready_slowest={slowest:.2f}  {'ok' if slowest < 2 else 'MISSED TARGET'}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/inside_ready.py"))
