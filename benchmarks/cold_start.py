"""A first visitor on a cold server, before and after readings moved to ONNX Runtime.

    python benchmarks/cold_start.py [--before REF] [--rounds 2]

Side by side in one run, alternating: this checkout ("after") and a git worktree of REF
("before": by default the last commit whose Draw page read with Keras). For each, with a
visitor's Chromium already open, a fresh `streamlit run app.py` is started and /draw opened as
soon as the server answers; the canvas's appearance is timed
from the server's start and from the page's request; a 1 is drawn as soon as the canvas shows
and the time from the pen lifting (and from the server's start) to the models' reading on the
page is measured; then the
server's memory (RSS) before any Look inside. Beside them, Streamlit serving the canvas alone
(a page of four lines): the floor for the canvas's appearance on this machine. And
`mnist-lab classify` on one PNG: wall time, peak memory, and whether TensorFlow was imported.
Goals: canvas <= 3 s after the server starts, first reading <= 1 s after the pen lifts, classify
<= 2 s without TensorFlow, server memory before Look inside <= 400 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DIGITS,
    server_pid,
    streamlit_server,
    stroke,
    tensorflow_loaded,
)

BEFORE = "714b38b"  # the read path in mnist_core/reading/, still on Keras
READ = ("() => document.querySelector('[data-read-strokes=\"1\"]:not([data-testid=drawing-invitation])')"
        " !== null")


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its children (streamlit runs in one process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


FLOOR_APP = """import streamlit as st
from streamlit_drawable_canvas import st_canvas
st.title("Draw a digit")
st_canvas(stroke_width=20, stroke_color="#FFFFFF", background_color="#000000", height=280, width=280,
          drawing_mode="freedraw", return_image_data=True, update_streamlit=True, key="canvas")
"""


def cold_visit(folder: Path, playwright, store: Path, reads: bool = True) -> dict:
    env = {"MNIST_LAB_NEIGHBOURS": "subset"}
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # a visitor's, open
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    started = time.perf_counter()
    try:
        with streamlit_server(store, store.parent / f"{store.name}.log", env, folder) as url:
            healthy = time.perf_counter() - started
            asked = time.perf_counter()
            page.goto(f"{url}/draw")
            canvas = page.locator("canvas.upper-canvas").first
            canvas.wait_for(timeout=180_000)
            shown = time.perf_counter()
            if not reads:
                return {"healthy": healthy, "canvas from start": shown - started,
                        "canvas from request": shown - asked}
            stroke(page, canvas, DIGITS[1][0])
            lifted = time.perf_counter()
            page.wait_for_function(READ, polling=20, timeout=180_000)
            read = time.perf_counter()
            pid = server_pid(url)
            memory, tensorflow = rss_mb(pid), tensorflow_loaded(pid)
    finally:
        browser.close()
    return {"healthy": healthy, "canvas from start": shown - started, "canvas from request": shown - asked,
            "reading after pen lifts": read - lifted, "reading from start": read - started,
            "server MB": memory, "tensorflow": tensorflow}


def classify(folder: Path, image: Path, store: Path) -> dict:
    code = ("import json, resource, sys, time; started = time.perf_counter(); "
            "from mnist_core.__main__ import main; status = main(['classify', sys.argv[1], '--json']); "
            "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules, "
            "'MB': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), file=sys.stderr)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, str(image)], cwd=folder, capture_output=True,
                          text=True, env={**os.environ, "MNIST_LAB_STORE": str(store)}, timeout=300)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"classify in {folder} failed: {done.stderr[-500:]}")
    found = json.loads(done.stderr.strip().splitlines()[-1])
    return {"classify wall s": wall, "classify MB": found["MB"], "classify tensorflow": found["tensorflow"]}


def main() -> None:
    from PIL import Image, ImageDraw
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"git commit to compare with (default {BEFORE})")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cold-start-"))
    before = work / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
                   check=True, capture_output=True)
    image = work / "one.png"
    picture = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(picture).line([(70, 60), (210, 60), (140, 245)], fill=255, width=22)
    picture.save(image)
    floor = work / "floor"  # Streamlit with the canvas alone: what no page of ours can beat
    floor.mkdir()
    (floor / "app.py").write_text(FLOOR_APP)
    sides = {"before": before, "after": ROOT, "floor": floor}
    found = {side: [] for side in sides}
    try:
        with sync_playwright() as playwright:
            for round_ in range(args.rounds):
                for side, folder in (list(sides.items()) if round_ % 2 == 0 else reversed(sides.items())):
                    store = work / f"store-{side}-{round_}"
                    if side == "floor":
                        result = cold_visit(folder, playwright, store, reads=False)
                    else:
                        result = cold_visit(folder, playwright, store) | classify(folder, image, store)
                    found[side].append(result)
                    print(f"round {round_ + 1} {side}: " + ", ".join(
                        f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()),
                        flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                       capture_output=True)
    print(f"\ncores={os.cpu_count()}, {args.rounds} rounds, medians (before -> after):")
    goals = {"canvas from start": 3, "reading after pen lifts": 1, "classify wall s": 2, "server MB": 400}
    for measure in found["after"][0]:
        values = {side: [r[measure] for r in results if measure in r] for side, results in found.items()}
        if isinstance(values["after"][0], bool):
            print(f"  {measure}: {values['before']} -> {values['after']}")
            continue
        b, a = statistics.median(values["before"]), statistics.median(values["after"])
        goal = goals.get(measure)
        verdict = "" if goal is None else (f"  goal <= {goal}: " + ("ok" if a <= goal else "MISSED"))
        floor_said = (f"  (Streamlit with the canvas alone: {statistics.median(values['floor']):.2f})"
                      if values.get("floor") else "")
        print(f"  {measure}: {b:.2f} -> {a:.2f} ({b / a:.1f}x){verdict}{floor_said}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/cold_start.py"))
