"""Dashboard speed: warm page renders (AppTest) and the draw path (preprocess + all models).

    python benchmarks/dashboard_speed.py [--repeats 5] [--drawings 50]

Pages render from the stores (committed results plus your user store). The draw path is
timed on canvases made from MNIST test digits, once models are loaded, calling the models
directly (as the Draw page does) and, side by side, through `model.predict` (as many apps
do). Targets: every page under 2 s warm, a drawing under 100 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

PAGES = ["pages/overview.py", "pages/lambda_sweep.py", "pages/width_sweep.py", "pages/errors.py",
         "pages/draw.py"]


def page_times(repeats: int) -> dict[str, float]:
    from streamlit.testing.v1 import AppTest

    results = {}
    for page in PAGES:
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        app.run()
        app.switch_page(page)
        app.run()  # warm-up: caches fill, models load
        if app.exception:
            raise SystemExit(f"{page} raised: {app.exception[0].value}")
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            app.run()
            times.append(time.perf_counter() - started)
        results[page] = statistics.median(times)
    return results


def draw_times(count: int) -> tuple[list[float], list[float], int]:
    import keras
    from drawing_robustness import as_canvas

    from mnist_core.data import load_mnist
    from mnist_core.predict import classify_drawing, predictor
    from mnist_core.preprocess import to_mnist
    from mnist_core.store import Stores
    from mnist_core.sweeps import named_runs

    data = load_mnist()
    models = {name: run.load_model() for name, run in named_runs(Stores.default(), data.fingerprint).items()}
    rng = np.random.default_rng(0)
    canvases = [as_canvas(data.x_test[i], rng) for i in range(count)]
    predictors = {name: predictor(model) for name, model in models.items()}
    classify_drawing(canvases[0], predictors)  # warm-up
    for model in models.values():
        model.predict(to_mnist(canvases[0])[None], verbose=0)
    for model in models.values():
        model.predict_on_batch(to_mnist(canvases[0])[None])
    direct, predict, on_batch = [], [], []
    for canvas in canvases:
        keras.backend.clear_session()  # as Streamlit does after every script run
        started = time.perf_counter()
        classify_drawing(canvas, predictors)
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        image = to_mnist(canvas)[None]
        for model in models.values():
            model.predict(image, verbose=0)
        predict.append(time.perf_counter() - started)
        keras.backend.clear_session()
        started = time.perf_counter()
        for model in models.values():
            model.predict_on_batch(image)  # a plain compiled function, not XLA
        on_batch.append(time.perf_counter() - started)
    return direct, predict, on_batch, len(models)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--drawings", type=int, default=50)
    args = parser.parse_args()
    print(f"cores={os.cpu_count()}")
    for page, seconds in page_times(args.repeats).items():
        verdict = "ok" if seconds < 2 else "OVER 2 s"
        print(f"page {page:24s} warm render {seconds:6.3f} s (median of {args.repeats})  {verdict}")
    direct, predict, on_batch, models = draw_times(args.drawings)
    p50, p95 = np.percentile(direct, 50) * 1000, np.percentile(direct, 95) * 1000
    print(f"draw path, {models} models: preprocess + classify p50 {p50:.1f} ms, p95 {p95:.1f} ms "
          f"over {len(direct)} drawings  {'ok' if p95 < 100 else 'OVER 100 ms'}")
    print(f"draw path through model.predict instead: p50 {np.median(predict) * 1000:.1f} ms")
    print(f"models alone through predict_on_batch (plain tf.function) after clear_session: "
          f"p50 {np.median(on_batch) * 1000:.1f} ms")
    print(f"draw_speedup_vs_predict={np.median(predict) / np.median(direct):.2f}")


if __name__ == "__main__":
    main()
