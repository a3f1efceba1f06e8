"""The README's screenshots, taken again: `python docs/screenshots.py` (Chromium, a fresh server
on the committed results, 1400x1000 window; MNIST_PATH, if set, supplies every test image)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.browser import DIGITS, draw, launch_chromium, streamlit_server, strokes_read  # noqa: E402

IDLE = "() => !document.querySelector('[data-testid=stStatusWidgetRunningIcon]')"
PAGES = {"overview.png": "", "lambda-sweep.png": "lambda_sweep", "width-sweep.png": "width_sweep",
         "errors.png": "errors"}


def page_shot(page, url: str, name: str, path: str) -> None:
    """A page as a visitor first sees it at 1400x1000, charts drawn."""
    page.goto(f"{url}/{path}")
    expect(page.get_by_test_id("stEChartsChart").first).to_be_visible(timeout=120_000)
    page.wait_for_function(IDLE, timeout=120_000)
    page.wait_for_timeout(1500)  # the charts' entry animation
    page.screenshot(path=HERE / name)


def draw_page(page, url: str) -> None:
    """The Draw page after drawing a 7: every model's reading beside the canvas."""
    page.goto(f"{url}/draw")
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    page.wait_for_function(IDLE, timeout=120_000)
    draw(page, canvas, 7)
    expect(page.get_by_text(strokes_read(len(DIGITS[7])))).to_be_visible(timeout=120_000)
    page.wait_for_function(IDLE, timeout=120_000)
    page.screenshot(path=HERE / "draw.png")


def suspect_labels(page, url: str) -> None:
    """The Errors page's Suspect labels tab: the voting runs, the filters and the first row."""
    page.goto(f"{url}/errors")
    page.get_by_role("tab", name="Suspect labels").click()
    expect(page.locator("[data-suspect]").first).to_be_visible(timeout=120_000)
    page.wait_for_function(IDLE, timeout=120_000)
    panel = page.get_by_role("tabpanel", name="Suspect labels")
    box = panel.bounding_box()
    fourth = page.locator("[data-suspect]").nth(3).get_attribute("data-suspect")
    last = page.get_by_role("radiogroup", name=f"Verdict on test image {fourth}").bounding_box()
    page.screenshot(path=HERE / "suspect-labels.png",
                    clip={"x": box["x"], "y": box["y"], "width": box["width"],
                          "height": last["y"] + last["height"] - box["y"] + 8})


def inside_a_model(page, url: str) -> None:
    """The Draw page with "Look inside a model" on, after drawing a 4: the reading, the maps,
    the nearest training digits and the first layers of the improved CNN."""
    page.set_viewport_size({"width": 1400, "height": 1700})  # the view is taller than a screen
    page.goto(f"{url}/draw")
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    page.get_by_text("Look inside a model").click()
    expect(page.get_by_text("Draw a digit to see inside improved_cnn.")).to_be_visible(timeout=120_000)
    draw(page, canvas, 4)
    why = page.locator('[data-inside="improved_cnn"][data-part="why"][data-strokes="2"]')
    layers = page.locator('[data-inside="improved_cnn"][data-part="layers"][data-strokes="2"]')
    expect(why).to_be_visible(timeout=120_000)
    expect(layers).to_be_visible(timeout=120_000)
    page.wait_for_function(IDLE, timeout=120_000)
    top = page.get_by_role("heading", name="Draw a digit").bounding_box()
    left = canvas.bounding_box()["x"]
    right = why.bounding_box()
    second_layer = layers.locator('[data-layer="2"]').bounding_box()
    page.screenshot(path=HERE / "inside-a-model.png",
                    clip={"x": left - 8, "y": top["y"], "width": right["x"] + right["width"] - left + 16,
                          "height": second_layer["y"] + second_layer["height"] - top["y"] + 8})
    page.set_viewport_size({"width": 1400, "height": 1000})


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, \
            streamlit_server(Path(folder) / "store", Path(folder) / "streamlit.log") as url, \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        for name, path in PAGES.items():
            page_shot(page, url, name, path)
        draw_page(page, url)
        suspect_labels(page, url)
        inside_a_model(page, url)
        browser.close()
    for name in (*PAGES, "draw.png", "suspect-labels.png", "inside-a-model.png"):
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
