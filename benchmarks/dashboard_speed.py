"""Dashboard speed: warm page renders (AppTest) and the draw path (preprocess + all models).

    python benchmarks/dashboard_speed.py [--repeats 5] [--drawings 50]

Pages render from the stores (committed results plus your user store). The draw path is
timed on canvases made from MNIST test digits, once models are loaded, the way the Draw
page does it (every model in ONNX Runtime) and, side by side, as it did before (all models in
one XLA-compiled Keras predictor), one compiled
predictor per model, Keras's own compiled `predict_on_batch`, and `model.predict` (as many
apps do). Then the whole reading with the "Look inside a model" view open, for each named
model in a loop of its own over every drawing (one visitor's strokes): the reading, that
model's activations and saliency, its 8 nearest training digits (among all 60,000) and the
view's HTML, each part timed. Targets: every page under 2 s warm, a drawing's reading under 5 ms
at p95, under 100 ms with the inside view.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

MODELS_ONNX = "the 4 models alone on ONNX Runtime, with the improved CNN's last hidden layer"
CHECK = "the 4 models on ONNX Runtime and the not-a-digit check on that layer"
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


def draw_times(count: int) -> tuple[dict[str, list[float]], int]:
    """Seconds per drawing for each way of classifying it, measured in turn on every drawing,
    each after `keras.backend.clear_session()` as Streamlit calls it after every script run."""

    from mnist_core.catalog import named_runs
    from mnist_core.data import load_mnist
    from mnist_core.reading import runtime
    from mnist_core.reading.drawings import redrawn_digit
    from mnist_core.reading.predict import classify, predictor
    from mnist_core.reading.preprocess import to_mnist
    from mnist_core.reading.reading import embedding_model, read, readers_for
    from mnist_core.store import StoreChain
    from pages.parts import serving

    data = load_mnist()
    named = named_runs(StoreChain.default(), data.fingerprint)
    models = {name: run.load_model() for name, run in named.items()}
    rng = np.random.default_rng(0)
    canvases = [redrawn_digit(data.x_test[i], rng) for i in range(count)]
    together = predictor(models)
    served = partial(serving.in_tensorflow_thread, together)  # as pages/parts/common.py serves it
    temperatures, check, _ = readers_for(named)
    checked = partial(serving.in_tensorflow_thread, predictor(models, embedding_model(check)))
    one_each = [predictor({name: model}) for name, model in models.items()]

    def through_predict(canvas):
        image = to_mnist(canvas)[None]
        for model in models.values():
            model.predict(image, verbose=0)

    onnx = runtime.predictor(named, StoreChain.default(), embedding_model(check))
    ways = {
        "draw path on ONNX Runtime: size check, preprocess, all models, calibration, not-a-digit check "
        "(the Draw page)": lambda canvas, image: read(canvas, onnx, check, temperatures),
        "the same draw path on one XLA-compiled Keras predictor (the Draw page before)":
            lambda canvas, image: read(canvas, checked, check, temperatures),
        "draw path before the size and not-a-digit checks: preprocess + all models":
            lambda canvas, image: classify(to_mnist(canvas), served),
        "models alone, one compiled predictor for all": lambda canvas, image: classify(image, together),
        "models alone, one compiled predictor per model":
            lambda canvas, image: [classify(image, predict) for predict in one_each],
        "models alone, plain compiled predict_on_batch per model":
            lambda canvas, image: [model.predict_on_batch(image[None]) for model in models.values()],
        "draw path through model.predict per model": lambda canvas, image: through_predict(canvas),
        "the 4 models alone on ONNX Runtime, with the improved CNN's last hidden layer":
            lambda canvas, image: onnx(image[None]),
        "the 4 models on ONNX Runtime and the not-a-digit check on that layer":
            lambda canvas, image: check.not_a_digit(onnx(image[None])[1][0]),
        "preprocessing alone (size check, crop, scale, centre)":
            lambda canvas, image: to_mnist(canvas),
    }
    times = {name: [] for name in ways}
    # The ways without TensorFlow in a loop of their own, as the server now runs them: right after
    # a TensorFlow call its idle threads still spin on the 2 cores (interleaved, the ONNX reading
    # measured about 2x slower).
    alone = [name for name in ways if "ONNX" in name or name.startswith("preprocessing")]
    time.sleep(1)
    for canvas in canvases[:1] + canvases:
        image = to_mnist(canvas)
        for name in alone:
            started = time.perf_counter()
            ways[name](canvas, image)
            times[name].append(time.perf_counter() - started)
    for canvas in canvases[:1] + canvases:  # the first round is a warm-up
        image = to_mnist(canvas)
        for name, way in ways.items():
            if name not in alone:
                timed(way, canvas, image, times[name])
    # The inside view, one model at a time over every drawing, as one visitor's strokes come to
    # the server (interleaved with the ways above, the improved CNN's measured a few ms more).
    inside = inside_ways(models, data, partial(read, predict=checked, check=check, temperatures=temperatures))
    for name, way in inside.items():
        times[name] = []
        for canvas in canvases[:1] + canvases:
            timed(way, canvas, None, times[name])
    return {name: values[1:] for name, values in times.items()}, len(models)


def timed(way, canvas, image, into: list) -> None:
    import keras

    keras.backend.clear_session()  # as Streamlit does after every script run
    started = time.perf_counter()
    way(canvas, image)
    into.append(time.perf_counter() - started)


INSIDE = "draw path + inside view of "
PARTS: dict[str, dict[str, list[float]]] = {}  # per inside view: seconds of each part of a reading


def inside_ways(models: dict, data, reading) -> dict:
    """For each model, the Draw page's whole reading (`reading(canvas)`) with that model's inside
    view open."""
    from mnist_core.reading.inside import Inspector
    from mnist_core.reading.neighbours import Neighbours, all_training_digits
    from pages.parts import serving
    from pages.parts.inside_view import layers_html, why_html

    digits = all_training_digits(data)
    ways = {}
    for name, model in models.items():
        inspector = serving.in_tensorflow_thread(Inspector, model)
        started = time.perf_counter()
        neighbours = Neighbours(serving.in_tensorflow_thread(inspector.embed, digits.floats()), digits)
        print(f"  {name}: placing {len(digits.labels):,} training digits in its penultimate layer "
              f"took {time.perf_counter() - started:.1f} s (once per model and server)")

        def whole_reading(canvas, image, name=name, inspector=inspector, neighbours=neighbours):
            parts = PARTS.setdefault(name, {})
            clock = [time.perf_counter()]

            def lap(part):
                now = time.perf_counter()
                parts.setdefault(part, []).append(now - clock[0])
                clock[0] = now

            image28 = reading(canvas).image28
            lap("reading")
            look = serving.in_tensorflow_thread(inspector.look, image28)
            lap("look (activations, maps)")
            positions, distances = neighbours.nearest(look.embedding)
            lap("8 nearest of 60,000")
            why_html(name, image28, look, (neighbours.digits, positions, distances))
            lap("maps and neighbours HTML")
            layers_html(name, look.layers)
            lap("layers HTML")

        ways[INSIDE + name] = whole_reading
    return ways


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--drawings", type=int, default=50)
    args = parser.parse_args()
    print(f"cores={os.cpu_count()}")
    for page, seconds in page_times(args.repeats).items():
        verdict = "ok" if seconds < 2 else "OVER 2 s"
        print(f"page {page:24s} warm render {seconds:6.3f} s (median of {args.repeats})  {verdict}")
    times, models = draw_times(args.drawings)
    print(f"{models} models, {args.drawings} drawings, each way in turn on every drawing:")
    for name, values in times.items():
        p50, p95 = np.percentile(values, 50) * 1000, np.percentile(values, 95) * 1000
        print(f"  {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    page_path, keras_path, before, _, _, _, through_predict = [np.median(v) for v in times.values()][:7]
    print(f"the size and not-a-digit checks and calibration add {1000 * (keras_path - before):.1f} ms at p50")
    onnx_p95 = np.percentile(next(iter(times.values())), 95)
    models_and_check = np.percentile(times[CHECK], 95)
    print(f"draw path on ONNX Runtime p95 {onnx_p95 * 1000:.1f} ms, {keras_path / page_path:.1f}x faster "
          f"than on Keras at p50; the 4 models and the check p95 {models_and_check * 1000:.1f} ms (goal "
          f"5 ms): {'ok' if models_and_check <= 0.005 else 'OVER 5 ms'}")
    for name, parts in PARTS.items():
        said = [f"{part} p50 {np.percentile(v[1:], 50) * 1000:.1f} / "
                f"p95 {np.percentile(v[1:], 95) * 1000:.1f} ms" for part, v in parts.items()]
        print(f"  where the time goes for {name}: " + ", ".join(said))
    worst = max(np.percentile(values, 95) for name, values in times.items() if name.startswith(INSIDE))
    verdict = "ok" if worst < 0.1 else "OVER 100 ms"
    print(f"inside view: slowest model's p95 {worst * 1000:.1f} ms: {verdict}")
    print(f"draw_speedup_vs_predict={through_predict / page_path:.2f}")


if __name__ == "__main__":
    from mnist_core.__main__ import run_benchmark

    sys.exit(run_benchmark(main, "benchmarks/dashboard_speed.py"))
