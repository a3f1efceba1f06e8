import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Pages (AppTest here, servers started by the browser tests) search the committed training
# digits only: placing all 60,000 would run in a background thread through later tests.
# tests/test_inside.py tests that placement itself.
os.environ.setdefault("MNIST_LAB_NEIGHBOURS", "subset")

from mnist_core.data import MNISTError, load_mnist  # noqa: E402
from mnist_core.store import RunStore, StoreChain  # noqa: E402


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST. In CI it must be there; elsewhere its absence skips the test, saying why."""
    try:
        return load_mnist()
    except MNISTError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"real MNIST not available: {exc}")


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "store")


@pytest.fixture
def stores(store):
    """A fresh writable store only: tests never read or write cached_results/."""
    return StoreChain(store)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, for the browser tests of one module."""
    from tests.browser import launch_chromium, require_chromium

    require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()
