"""Many people drawing at once: concurrent browser sessions on the Draw page.

    python benchmarks/draw_load.py [--sessions 10] [--drawings 5] [--think 1] [--inside] [--server-first]

Starts `streamlit run app.py` on a free local port, opens one Chromium with N pages,
opens the Draw page in every one, then has every page draw digits at the same time. For
each drawing it measures, on the page's own clock, the time from the last stroke's mouse-up
to the first frame that shows the predictions for the whole drawing (the page's "Read after
N strokes" caption), and reports p50, p95 and errors. Strokes follow each other without a
pause; after each answer a session waits --think seconds (a person reading it) and clears.
All pages, the server and Playwright share this machine's cores.
With --inside, every session first turns on "Look inside a model" (the improved CNN, the
heaviest to look inside), and the time to its maps and neighbours covering every stroke is
reported as well. Target on 2 cores: no errors, p95 under 1 s for both.
Where the machine's time went while the sessions drew is printed too (Linux): CPU seconds of
the Streamlit server, of Chromium (its page renderers apart) and of this driver.
With --server-first, this driver and the browsers it starts run at a lower CPU priority (nice
+10) than the server, which started before: the server then gets the cores first, as it would
if each visitor's browser ran on their own machine, not on the server's cores (the browsers
still render on what is left of the same 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from playwright.async_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from tests.browser import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DIGITS,
    streamlit_server,
    stroke_moves,
    strokes_read,
)

EMPTY_CANVAS = "Draw a digit on the black canvas"


async def stroke(page, canvas, points) -> None:
    """One pen stroke, as tests.browser.stroke draws it."""
    approach, drawn = stroke_moves(await canvas.bounding_box(), points)
    for x, y, steps in approach:
        await page.mouse.move(x, y, steps=steps)
    await page.mouse.down()
    for x, y, steps in drawn:
        await page.mouse.move(x, y, steps=steps)
    await page.mouse.up()


async def settled(canvas) -> None:
    """Wait until the canvas stops moving: while a loaded page settles, its layout shifts."""
    previous = None
    while (box := await canvas.bounding_box()) != previous:
        previous = box
        await asyncio.sleep(0.3)


# Timed inside the page, on the page's clock: Playwright's own waiting polls, and would add
# up to half a second. The prediction counts as shown at the first frame painted with it.
# With the inside view on, the look (its maps and neighbours for every stroke) is timed too.
WATCH_FOR_PREDICTION = """([text, strokes]) => {
    window.drawLoad = {up: null, shown: null, looked: strokes === null ? 0 : null};
    document.addEventListener('mouseup', () => { window.drawLoad.up = performance.now(); },
                              {capture: true, once: true});
    const marks = {
        shown: () => [...document.querySelectorAll('p')].some(p => p.textContent.trim() === text),
        looked: () => !!document.querySelector(
            `[data-inside][data-part="why"][data-strokes="${strokes}"]`),
    };
    const observer = new MutationObserver(() => {
        for (const [mark, seen] of Object.entries(marks)) {
            if (window.drawLoad[mark] === null && seen()) {
                window.drawLoad[mark] = -1;
                requestAnimationFrame(() => { window.drawLoad[mark] = performance.now(); });
            }
        }
        if (window.drawLoad.shown !== null && window.drawLoad.looked !== null) observer.disconnect();
    });
    observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


# Playwright's waits poll on every animation frame by default, which keeps every waiting page
# painting 60 frames a second: ten such pages cost more CPU than the app. A person's browser
# does not do that, so the benchmark polls on a timer instead.
POLL_MS = 50


async def until(page, predicate: str, timeout: float, arg=None) -> None:
    await page.wait_for_function(predicate, arg=arg, polling=POLL_MS, timeout=timeout)


async def app_idle(page, timeout: float) -> None:
    await until(page, "() => !document.querySelector('[data-testid=stStatusWidgetRunningIcon]')", timeout)


async def canvas_ready(page, timeout: float) -> None:
    """The Draw page shows its empty canvas and its invitation to draw."""
    await until(page, "text => document.body.textContent.includes(text)", timeout, EMPTY_CANVAS)
    await page.locator("canvas.upper-canvas").first.wait_for(timeout=timeout)  # in a shadow root


async def open_draw_page(browser, url: str, ready: list, errors: list, index: int, inside: bool):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    started = time.perf_counter()
    try:
        await page.goto(f"{url}/draw", timeout=300_000)
        await canvas_ready(page, 300_000)
        await settled(page.locator("canvas.upper-canvas").first)
        await app_idle(page, 300_000)  # models loaded: the page is ready for a visitor
        if inside:
            await page.get_by_text("Look inside a model").click()
            await until(page, "text => document.body.textContent.includes(text)", 300_000,
                        "Draw a digit to see inside")
            await app_idle(page, 300_000)
        ready.append(time.perf_counter() - started)
        return page
    except Exception as exc:
        errors.append(f"session {index} opening: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        await context.close()
        return None


async def draw_digits(page, drawings: int, think: float, latencies: list, errors: list, index: int,
                      inside: bool):
    """Draw digits stroke after stroke (no waiting between strokes), timing mouse-up of the
    last stroke to the prediction that covers every stroke being shown; appends
    (drawing number, seconds) to `latencies`."""
    try:
        for n in range(drawings):
            digit = list(DIGITS)[(index + n) % len(DIGITS)]
            canvas = page.locator("canvas.upper-canvas").first
            await settled(canvas)
            *first_strokes, last_stroke = DIGITS[digit]
            for points in first_strokes:
                await stroke(page, canvas, points)
            expected = strokes_read(len(DIGITS[digit]))
            await page.evaluate(WATCH_FOR_PREDICTION, [expected, len(DIGITS[digit]) if inside else None])
            await stroke(page, canvas, last_stroke)
            try:
                await until(page, "() => window.drawLoad.shown > 0 && window.drawLoad.looked !== null "
                                  "&& window.drawLoad.looked >= 0", 60_000)
            except PlaywrightTimeout:
                shown = await page.get_by_text("Read after").all_inner_texts()
                raise PlaywrightTimeout(f"drawing {n + 1} ({digit}): after 60 s the page shows "
                                        f"{shown or 'no prediction'}, not {expected!r}") from None
            timing = await page.evaluate("() => window.drawLoad")
            looked = (timing["looked"] - timing["up"]) / 1000 if inside else None
            latencies.append((n, (timing["shown"] - timing["up"]) / 1000, looked))
            await asyncio.sleep(think)  # a person looks at the answer before clearing
            if await page.get_by_test_id("stException").count():
                errors.append(f"session {index}: exception shown")
            await page.get_by_role("button", name="Clear").click()
            await canvas_ready(page, 60_000)
            await app_idle(page, 60_000)
    except Exception as exc:  # counted and reported, the other sessions go on
        errors.append(f"session {index}: {type(exc).__name__}: {str(exc).splitlines()[0]}")


def cpu_seconds() -> Counter:
    """CPU seconds used so far by every live process on this machine, by what it is (from
    /proc: empty elsewhere)."""
    used = Counter()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if "chromium" in command:
            what = "Chromium renderers" if "--type=renderer" in command else "Chromium, other"
        elif "streamlit" in command:
            what = "Streamlit server"
        elif "draw_load" in command or "playwright" in command:
            what = "this driver"
        else:
            what = "other"
        used[what] += (int(fields[11]) + int(fields[12])) / tick
    return used


async def run(url: str, sessions: int, drawings: int, think: float, inside: bool):
    """Open every session's page first (people arrive), then all draw at once; returns the
    pages' readiness times, the latencies, the errors, and the CPU seconds by process group
    while they drew, with the drawing's wall time."""
    ready, latencies, errors = [], [], []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = await asyncio.gather(*(open_draw_page(browser, url, ready, errors, i, inside)
                                       for i in range(sessions)))
        before, started = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(draw_digits(page, drawings, think, latencies, errors, i, inside)
                               for i, page in enumerate(pages) if page is not None))
        used = cpu_seconds()
        used.subtract(before)
        wall = time.perf_counter() - started
        await browser.close()
    return ready, latencies, errors, (used, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--drawings", type=int, default=5, help="drawings per session")
    parser.add_argument("--think", type=float, default=1.0,
                        help="seconds a session looks at each answer before clearing (default 1)")
    parser.add_argument("--inside", action="store_true",
                        help='every session has "Look inside a model" open (the improved CNN)')
    parser.add_argument("--server-first", action="store_true",
                        help="the browsers (and this driver) yield the CPU to the server (nice +10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        with streamlit_server(Path(folder) / "store", Path(folder) / "streamlit.log") as url:
            if args.server_first:
                os.nice(10)  # inherited by Playwright and Chromium, started next; not by the server
            ready, latencies, errors, (used, wall) = asyncio.run(
                run(url, args.sessions, args.drawings, args.think, args.inside))
    print(f"cores={os.cpu_count()} sessions={args.sessions} drawings={len(latencies)} "
          f"think={args.think:g}s inside={'improved_cnn' if args.inside else 'off'} errors={len(errors)}"
          f"{' browsers at nice +10 (--server-first)' if args.server_first else ''}")
    if ready:
        print(f"{len(ready)} pages opened together, the slowest ready after {max(ready):.1f} s")
    for error in errors[:10]:
        print("  ", error)
    if used:
        total = sum(used.values())
        shares = ", ".join(f"{what} {seconds:.0f} s ({seconds / total:.0%})"
                           for what, seconds in used.most_common() if seconds >= 0.5)
        print(f"while drawing ({wall:.0f} s, {os.cpu_count()} cores: {os.cpu_count() * wall:.0f} CPU s), "
              f"CPU seconds used: {shares}")
    if latencies:
        first = [seconds for n, seconds, _ in latencies if n == 0]
        later = [seconds for n, seconds, _ in latencies if n > 0]
        if first and later:
            print(f"first drawings (every session at once): p50 {np.median(first) * 1000:.0f} ms, "
                  f"max {max(first) * 1000:.0f} ms; later ones: p50 {np.median(later) * 1000:.0f} ms, "
                  f"max {max(later) * 1000:.0f} ms")
        looks = [seconds for _, _, seconds in latencies if seconds is not None]
        latencies = [seconds for _, seconds, _ in latencies]
        for what, times in (("prediction", latencies), ("inside view", looks)):
            if times:
                p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
                verdict = "ok" if p95 < 1 and not errors else "MISSED TARGET"
                print(f"mouse-up to {what} shown: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
                      f"max {max(times) * 1000:.0f} ms  {verdict}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/draw_load.py"))
