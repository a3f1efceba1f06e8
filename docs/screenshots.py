"""The README's screenshots, taken again: `python docs/screenshots.py` (Chromium, a fresh server
on the committed results, 1400x1000 window; MNIST_PATH, if set, supplies every test image)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.browser import launch_chromium, streamlit_server  # noqa: E402

IDLE = "() => !document.querySelector('[data-testid=stStatusWidgetRunningIcon]')"


def suspect_labels(page, url: str) -> None:
    """The Errors page's Suspect labels tab: the voting runs, the filters and the first row."""
    page.goto(f"{url}/errors")
    page.get_by_role("tab", name="Suspect labels").click()
    expect(page.locator("[data-suspect]").first).to_be_visible(timeout=120_000)
    page.wait_for_function(IDLE, timeout=120_000)
    panel = page.get_by_role("tabpanel", name="Suspect labels")
    box = panel.bounding_box()
    last = page.get_by_role("radiogroup", name="Verdict on test image 3762").bounding_box()
    page.screenshot(path=HERE / "suspect-labels.png",
                    clip={"x": box["x"], "y": box["y"], "width": box["width"],
                          "height": last["y"] + last["height"] - box["y"] + 8})


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, \
            streamlit_server(Path(folder) / "store", Path(folder) / "streamlit.log") as url, \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        suspect_labels(page, url)
        browser.close()
    print(f"wrote {HERE / 'suspect-labels.png'}")


if __name__ == "__main__":
    main()
