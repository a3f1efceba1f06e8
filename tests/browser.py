"""Helpers for the browser tests: a real `streamlit run app.py` and Debian's Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 # a camera for st.camera_input: Chromium's test pattern, allowed without asking
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_server(store: Path, log: Path, env: dict | None = None, folder: Path = REPO):
    """`streamlit run app.py` (of `folder`) on a free port, healthy before it is yielded (as its
    URL); `env` adds to (or, with None values, removes from) the server's environment."""
    port = free_port()
    env = {key: value for key, value in {**os.environ, "MNIST_LAB_STORE": str(store), **(env or {})}.items()
           if value is not None}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as output:
        server = subprocess.Popen(command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def server_pid(url: str) -> int:
    """The pid of the `streamlit run` serving `url` (started by streamlit_server)."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in command and b"--server.port" in command and \
                command[command.index(b"--server.port") + 1] == port.encode():
            return int(proc.name)
    raise LookupError(f"no streamlit process serves {url}")


def tensorflow_loaded(pid: int) -> bool:
    """Whether process `pid` has TensorFlow's library mapped (it never unloads once imported)."""
    return "_pywrap_tensorflow_internal" in Path(f"/proc/{pid}/maps").read_text()


def require_chromium() -> None:
    """Fail in CI, skip elsewhere, when Debian's Chromium is not installed."""
    import shutil

    import pytest

    if not shutil.which(CHROMIUM):
        message = f"Chromium is required at {CHROMIUM}: apt-get install -y chromium"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_until_idle(page, timeout: float = 60_000) -> None:
    """Wait until the app has finished rerunning (its "Running…" indicator is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidgetRunningIcon]')", timeout=timeout)


READ_STROKES = "() => document.querySelector('[data-read-strokes]')?.dataset.readStrokes ?? null"


def drawn(page, canvas, points) -> None:
    """One pen stroke, then wait until the Draw page has read it: its readout names a stroke
    count other than before (the canvas asks for a rerun 200 ms after mouse-up), and the rerun
    is over. A fixed pause instead waited 1.5 s a stroke, and too little on a busy machine."""
    before = page.evaluate(READ_STROKES)
    stroke(page, canvas, points)
    page.wait_for_function(f"before => ({READ_STROKES})() !== before", arg=before, timeout=60_000)
    wait_until_idle(page)


def choose(page, select, option, timeout: float = 60.0) -> None:
    """Pick `option` (its exact name, or a pattern) in the selectbox `select` as a person does:
    open the menu, click the option. A rerun that lands between the two redraws the selectbox
    and closes its menu (seen on a loaded machine: the option never came); a person opens it
    again, and so does this, for up to `timeout` seconds."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    item = page.get_by_role("option", name=option, exact=isinstance(option, str))
    deadline = time.monotonic() + timeout
    while True:
        wait_until_idle(page)
        select.click()
        try:
            item.click(timeout=10_000)
            return
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                raise
            page.keyboard.press("Escape")  # close a menu left open before trying again


def strokes_read(count: int) -> str:
    """The Draw page's caption once its prediction covers `count` strokes."""
    return f"Read after {count} stroke{'' if count == 1 else 's'}."


def settled(canvas) -> None:
    """Wait until the canvas stops moving: while a page settles, its layout can still shift."""
    previous = None
    while (box := canvas.bounding_box()) != previous:
        previous = box
        time.sleep(0.3)


def clear(page):
    """Click Clear and wait, as a person does, until the page shows the empty canvas read (its
    invitation, the rerun over, the layout still). Returns the canvas."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Clear").click()
    expect(page.get_by_text("Draw a digit on the black canvas")).to_be_visible()
    wait_until_idle(page)
    canvas = page.locator("canvas.upper-canvas").first
    settled(canvas)
    return canvas


def draw_strokes(page, canvas, strokes) -> None:
    """Draw `strokes` (lists of canvas points) one by one, each read before the next."""
    settled(canvas)
    for points in strokes:
        drawn(page, canvas, points)


def draw(page, canvas, digit: int) -> None:
    """Draw one of DIGITS stroke by stroke, each read before the next."""
    draw_strokes(page, canvas, DIGITS[digit])


def stroke_moves(box: dict, points) -> tuple[list, list]:
    """The mouse moves (x, y, steps) of one pen stroke through `points` (canvas pixels) on a
    canvas at `box`: before the press, the hand arriving at the start from a little way off
    (the canvas ignores a press with no move before it), then while pressed."""
    scale = box["width"] / 280

    def at(x, y, steps):
        return box["x"] + x * scale, box["y"] + y * scale, steps

    x0, y0 = points[0]
    return [at(x0 - 12, y0 - 12, 1), at(x0, y0, 3)], [at(x, y, 4) for x, y in points[1:]]


def stroke(page, canvas, points) -> None:
    """One pen stroke through `points`, where the canvas is now (the layout may have moved)."""
    approach, drawn = stroke_moves(canvas.bounding_box(), points)
    for x, y, steps in approach:
        page.mouse.move(x, y, steps=steps)
    page.mouse.down()
    for x, y, steps in drawn:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


DIGITS = {
    1: [[(140, 40), (140, 100), (140, 160), (140, 240)]],
    7: [[(70, 60), (120, 60), (170, 60), (210, 60)],
        [(210, 60), (190, 110), (170, 160), (150, 210), (140, 245)]],
    0: [[(140, 40), (190, 60), (210, 140), (190, 220), (140, 245), (90, 220), (70, 140), (90, 60),
         (140, 40)]],
    3: [[(80, 60), (140, 35), (200, 70), (140, 135), (205, 180), (140, 245), (75, 215)]],
    4: [[(150, 40), (110, 110), (70, 170), (140, 170), (215, 170)], [(175, 100), (175, 170), (175, 245)]],
}


@contextmanager
def file_server(folder: Path):
    """An HTTP server on a free local port serving `folder`; yields its URL."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def chart_box(chart) -> dict:
    """Where an ECharts chart (its drawing, an SVG) is on the page."""
    return chart.locator("svg").first.bounding_box()


def chart_cell(page, chart, column: float, row: float, columns: int = 10, rows: int = 10,
               grid: dict | None = None):
    """Click the middle of a cell of the confusion matrix (or of a chart with the plot area `grid`),
    the hand coming from a little way off."""
    from pages.parts.charts import CONFUSION_GRID

    grid = grid or CONFUSION_GRID
    box = chart_box(chart)
    width = box["width"] - grid["left"] - grid["right"]
    height = box["height"] - grid["top"] - grid["bottom"]
    x = box["x"] + grid["left"] + width * (column + 0.5) / columns
    y = box["y"] + grid["top"] + height * (row + 0.5) / rows
    click_at(page, x, y)


def click_at(page, x: float, y: float) -> None:
    page.mouse.move(x - 8, y - 8)
    page.mouse.move(x, y, steps=3)
    page.mouse.click(x, y)


def x_axis_labels(chart, grid: dict) -> list[str]:
    """The labels under a chart's x axis as a person reads them: left to right."""
    box = chart_box(chart)
    axis_y = box["y"] + box["height"] - grid["bottom"]
    labels = []
    for text in chart.locator("svg text").all():
        where = text.bounding_box()
        if where and axis_y <= where["y"] <= axis_y + 20:
            labels.append((where["x"], text.text_content()))
    return [label for _, label in sorted(labels)]


_TEXT_CLASHES = """(chart) => {
  const texts = [...chart.querySelectorAll('svg text')].map(t => [t.textContent, t.getBoundingClientRect()])
      .filter(([text, box]) => text.trim() && box.width > 0);
  const clashes = [];
  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
    const [a, p] = texts[i], [b, q] = texts[j];
    if (Math.min(p.right, q.right) - Math.max(p.left, q.left) > 1 &&
        Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top) > 1) clashes.push(`${a} over ${b}`);
  }
  const frame = chart.getBoundingClientRect();
  for (const [text, box] of texts)
    if (box.left < frame.left - 1 || box.right > frame.right + 1) clashes.push(`${text} cut off`);
  return clashes;
}"""


def chart_text_clashes(chart) -> list[str]:
    """What a person could not read in a chart: labels, legends and titles drawn over each other
    or cut off at its edges (as a legend's entries behind a "1/3" pager are)."""
    return chart.evaluate(_TEXT_CLASHES)
