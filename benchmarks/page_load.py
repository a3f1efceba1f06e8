"""Page speed as a visitor feels it, in Chromium against `streamlit run app.py`.

    python benchmarks/page_load.py [--repeats 5]

For every page: the first render in a fresh session, both for a first visit (a new browser
context: nothing cached) and for a returning visitor (a new tab in a browser that has seen
the dashboard before: its HTTP cache holds Streamlit's scripts, ECharts' among them), and a switch to
the page from another page within a session (a click in the sidebar). Each is timed until
the page's title is shown, its charts or canvas are drawn and the app is idle. The server is
warmed first (every page opened once: caches filled, models loaded), as it is for any
visitor after the first. Medians of --repeats, printed side by side.
Goals: first render under 2 s, page switch under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser import launch_chromium, streamlit_server  # noqa: E402

CHART = "[data-testid=stEChartsChart] svg"
PAGES = [  # url path, sidebar link, heading, what must be drawn
    ("", "Overview", "MNIST lab", CHART),
    ("lambda_sweep", "Lambda sweep", "L2 regularization sweep", CHART),
    ("width_sweep", "Width sweep", "Width sweep", CHART),
    ("errors", "Errors", "Misclassified test images", CHART),
    ("draw", "Draw", "Draw a digit", "canvas.upper-canvas"),
]
IDLE = "() => !document.querySelector('[data-testid=stStatusWidgetRunningIcon]')"


def shown(page, heading: str, drawn: str) -> None:
    page.get_by_role("heading", name=heading).wait_for(timeout=120_000)
    page.locator(drawn).first.wait_for(timeout=120_000)
    page.wait_for_function(IDLE, polling=50, timeout=120_000)


def first_render(browser, url: str, path: str, heading: str, drawn: str) -> float:
    """A first visit: a new browser context, nothing cached."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    seconds = returning_visit(context, url, path, heading, drawn)
    context.close()
    return seconds


def returning_visit(context, url: str, path: str, heading: str, drawn: str) -> float:
    """A new session (tab) in `context`: for a context that has opened the dashboard before,
    a returning visitor."""
    page = context.new_page()
    started = time.perf_counter()
    page.goto(f"{url}/{path}")
    shown(page, heading, drawn)
    seconds = time.perf_counter() - started
    page.close()
    return seconds


def page_switch(browser, url: str, target: tuple, start: tuple) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/{start[0]}")
    shown(page, start[2], start[3])
    started = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=target[1]).click()
    shown(page, target[2], target[3])
    seconds = time.perf_counter() - started
    context.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, \
            streamlit_server(Path(folder) / "store", Path(folder) / "streamlit.log") as url, \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for path, _, heading, drawn in PAGES:  # warm the server
            first_render(browser, url, path, heading, drawn)
        returning = browser.new_context(viewport={"width": 1400, "height": 1000})
        for path, _, heading, drawn in PAGES:  # this visitor has been here before
            returning_visit(returning, url, path, heading, drawn)
        print(f"cores={os.cpu_count()} repeats={args.repeats}")
        print(f"{'page':14s} {'first visit':>12s} {'returning':>10s} {'page switch':>12s}")
        for index, target in enumerate(PAGES):
            start = PAGES[index - 1]  # switch from the page before it in the sidebar
            first = statistics.median(first_render(browser, url, *target[:1], *target[2:])
                                      for _ in range(args.repeats))
            again = statistics.median(returning_visit(returning, url, *target[:1], *target[2:])
                                      for _ in range(args.repeats))
            switch = statistics.median(page_switch(browser, url, target, start)
                                       for _ in range(args.repeats))
            verdict = ", ".join(word for word, over in (("FIRST VISIT OVER 2 s", first >= 2),
                                                        ("RETURNING OVER 2 s", again >= 2),
                                                        ("SWITCH OVER 1 s", switch >= 1)) if over)
            print(f"{target[1]:14s} {first:10.2f} s {again:8.2f} s {switch:10.2f} s  {verdict or 'ok'}")
        browser.close()


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/page_load.py"))
