"""Many people drawing at once: concurrent browser sessions on the Draw page.

    python benchmarks/draw_load.py [--sessions 10] [--drawings 5]

Starts `streamlit run app.py` on a free local port, opens one Chromium with N pages,
and has every page draw digits at the same time. For each drawing it measures the time
from mouse-up to the models' predictions being shown, and reports p50, p95 and errors.
Target on 2 cores: no errors, p95 under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from tests.browser import CHROMIUM, CHROMIUM_ARGS, DIGITS, streamlit_server  # noqa: E402


async def stroke(page, box, points) -> None:
    scale = box["width"] / 280
    await page.mouse.move(box["x"] + points[0][0] * scale, box["y"] + points[0][1] * scale)
    await page.mouse.down()
    for x, y in points[1:]:
        await page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=4)
    await page.mouse.up()


async def session(browser, url: str, drawings: int, latencies: list, errors: list, index: int):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    try:
        await page.goto(f"{url}/draw")
        canvas = page.locator("canvas.upper-canvas").first
        await canvas.wait_for(timeout=120_000)
        for n in range(drawings):
            digit = list(DIGITS)[(index + n) % len(DIGITS)]
            box = await canvas.bounding_box()
            for points in DIGITS[digit][:-1]:
                await stroke(page, box, points)
            await stroke(page, box, DIGITS[digit][-1])
            released = time.perf_counter()
            await page.get_by_test_id("stMetric").first.wait_for(timeout=30_000)
            latencies.append(time.perf_counter() - released)
            if await page.get_by_test_id("stException").count():
                errors.append(f"session {index}: exception shown")
            await page.get_by_role("button", name="Clear").click()
            await page.get_by_text("Draw a digit on the black canvas").wait_for(timeout=30_000)
            canvas = page.locator("canvas.upper-canvas").first
            await canvas.wait_for(timeout=30_000)
    except Exception as exc:  # counted and reported, the other sessions go on
        errors.append(f"session {index}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        await context.close()


async def run(url: str, sessions: int, drawings: int) -> tuple[list, list]:
    latencies, errors = [], []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        await asyncio.gather(*(session(browser, url, drawings, latencies, errors, i)
                               for i in range(sessions)))
        await browser.close()
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--drawings", type=int, default=5, help="drawings per session")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        with streamlit_server(Path(folder) / "store", Path(folder) / "streamlit.log") as url:
            latencies, errors = asyncio.run(run(url, args.sessions, args.drawings))
    print(f"cores={os.cpu_count()} sessions={args.sessions} drawings={len(latencies)} "
          f"errors={len(errors)}")
    for error in errors[:10]:
        print("  ", error)
    if latencies:
        p50, p95 = np.percentile(latencies, 50), np.percentile(latencies, 95)
        print(f"mouse-up to prediction shown: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms  {'ok' if p95 < 1 and not errors else 'MISSED TARGET'}")


if __name__ == "__main__":
    main()
