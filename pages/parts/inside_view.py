"""The Draw page's look inside one model: its layers' activity, its saliency maps and the
training digits it places nearest, for the current drawing (mnist_core.reading.inside, .neighbours).

Drawn as one HTML element of inline PNGs, like the readout above it: it is resent after every
stroke, and a handful of images costs the browser far less than a chart per layer.
"""

from __future__ import annotations

import html
import time

import numpy as np
import streamlit as st

from pages.parts import charts, common, serving

GRID_WIDTH = 600  # px on the page for a layer's maps or bars: two layers side by side at 1400 px
RAISES = np.array([214, 39, 40], np.float64)  # red
LOWERS = np.array([31, 119, 180], np.float64)  # blue


def show(name: str, key: str, image28: np.ndarray | None, strokes: int, beside,
         filters_key: str = "every_filter") -> None:
    """The inside view of run `key` (shown as `name`) for `image28` (drawn in `strokes`
    strokes): which pixels decide and the nearest training digits in the container `beside`
    (the column next to the reading), what each layer does below; or an invitation to draw."""
    common.read_or_stop(common.prepare_inspector, key)
    with beside:
        waiting = st.empty()
        started = time.monotonic()
        while not common.inspector_ready(key):  # each update lets a newer stroke's rerun in
            waiting.info(f"Loading TensorFlow to look inside {name} (it computes the gradients): "
                         f"usually 5-20 s on this server, {time.monotonic() - started:.0f} s so far. "
                         "The reading above does not wait for it.")
            time.sleep(0.25)
        waiting.empty()
    with beside, st.spinner("Preparing a look inside the model…"):
        inspector = common.read_or_stop(common.inspector, key)
        search, problem = common.read_or_stop(common.neighbours_of, key)
    if problem:
        beside.warning(problem)
    if image28 is None:
        beside.caption(f"Draw a digit to see inside {name}.")
        return
    visitor = st.runtime.scriptrunner.get_script_run_ctx().session_id
    look = serving.after_readings(inspector.look, image28, visitor=visitor)
    if look is None:
        return  # a newer stroke's run draws the view
    found, note = None, ""
    if search is not None:
        neighbours = search.current  # the subset until all training digits are placed
        positions, distances = neighbours.nearest(look.embedding)
        found = (neighbours.digits, positions, distances)
        if search.upgrading:
            so_far = f"{search.placed:,} of {search.total:,}" if search.total else "reading them"
            note = (f"All training digits are being placed ({so_far} so far; it pauses while you draw); "
                    f"a stroke after that searches all of them.")
        elif search.problem:
            note = f"Searched among the committed subset only: {search.problem}."
    with beside:
        st.html(why_html(name, image28, look, found, strokes, note))
    every = st.toggle("Show every filter", key=filters_key,
                      help=f"By default each conv block shows its {FEW} most active filters, larger")
    st.html(layers_html(name, look.layers, strokes, every))


def _rough(completeness: float) -> str:
    return " It is a rough map here: read it with care." if abs(1 - completeness) > 0.1 else ""


def why_html(name: str, image28: np.ndarray, look, found, strokes: int = 0, note: str = "") -> str:
    """Saliency and the nearest training digits, as one element (beside the reading)."""
    top, second = look.top, look.runner_up
    maps = (
        _figure(f"What makes it {charts.with_article(top)}", _overlay(image28, look.drives_top),
                f"red raises the {top}, blue lowers it", "saliency-top")
        + _figure(f"{charts.with_article(top).capitalize()} rather than {charts.with_article(second)}",
                  _overlay(image28, look.top_versus_runner_up),
                  f"red: for {top}, blue: for {second}", "saliency-versus"))
    share = min(look.completeness, 9.99)
    how_much = "all" if abs(1 - share) < 0.03 else "most" if abs(1 - share) < 0.1 else "part"
    saliency = (f'<div><div style="font-weight:600">Which pixels decide</div>'
                f'<div style="display:flex;gap:14px;margin-top:4px">{maps}</div>'
                '<div style="font-size:12px;color:#666;max-width:320px">Each inked pixel\'s share of '
                f'the {top}\'s score (integrated gradients from a blank canvas). The shares add up to '
                f'{share:.0%} of how far the score rises from a blank canvas to this drawing: the map '
                f'accounts for {how_much} of it.{_rough(look.completeness)} Blank pixels get no share, '
                'so a stroke that is <i>missing</i> cannot show here.</div></div>')
    extra = f'<div style="font-size:12px;color:#666">{html.escape(note)}</div>' if note else ""
    return (f'<div data-inside="{html.escape(name)}" data-part="why" data-strokes="{strokes}" '
            'style="display:flex;gap:24px;flex-wrap:wrap">'
            f'{saliency}<div>{_neighbours_html(found, look)}{extra}</div></div>')


def _figure(title: str, pixels: np.ndarray, legend: str, test_id: str) -> str:
    return (f'<figure data-testid="{test_id}" style="margin:0"><figcaption style="font-size:13px">'
            f'{html.escape(title)}</figcaption>'
            f'<img alt="{html.escape(title)}" src="{charts.png_data_uri(pixels)}" '
            f'style="width:140px;height:140px;image-rendering:pixelated;margin:4px 0"/>'
            f'<div style="font-size:12px;color:#666">{html.escape(legend)}</div></figure>')


def _overlay(image28: np.ndarray, attributions: np.ndarray) -> np.ndarray:
    """The drawing in dim grey, tinted red where attributions are positive and blue where
    negative, as strongly as their size (relative to the 99th percentile of sizes)."""
    size = np.abs(attributions)
    scale = max(float(np.percentile(size, 99)), 1e-12)
    alpha = np.clip(size / scale, 0, 1)[..., None]
    colour = np.where((attributions >= 0)[..., None], RAISES, LOWERS)
    base = (0.45 * 255 * np.clip(image28, 0, 1))[..., None].repeat(3, axis=2)
    return (base * (1 - alpha) + colour * alpha).astype(np.uint8)


def _neighbours_html(found, look) -> str:
    if found is None:
        return ""
    digits, positions, distances = found
    places = _places(distances)
    cells = "".join(
        f'<figure data-neighbour="{int(digits.indices[p])}" data-label="{int(digits.labels[p])}" '
        f'style="margin:0;text-align:center" title="training image {int(digits.indices[p])}, '
        f'cosine distance {d:.3f}"><img alt="training digit labelled {int(digits.labels[p])}" '
        f'src="{charts.png_data_uri(digits.images[p])}" style="width:56px;height:56px;'
        f'image-rendering:pixelated;border-radius:4px"/><figcaption style="font-size:13px">'
        f'<b>{int(digits.labels[p])}</b> <span style="color:#888">{d:.{places}f}</span></figcaption></figure>'
        for p, d in zip(positions, map(float, distances)))
    width = look.embedding.shape[0]
    return (f'<div><div style="font-weight:600">Nearest training digits</div>'
            f'<div style="display:grid;grid-template-columns:repeat(4,60px);gap:6px 8px;margin-top:4px">'
            f'{cells}</div><div style="font-size:12px;color:#666;max-width:300px">Label and cosine '
            f'distance, in the layer before the output ({width} units), among {html.escape(digits.source)}.'
            f'</div></div>')


def _places(distances) -> int:
    """Decimal places enough for the nearest and the farthest shown to read apart (2 to 5)."""
    low, high = float(min(distances, default=0)), float(max(distances, default=0))
    return next((n for n in range(2, 6) if f"{low:.{n}f}" != f"{high:.{n}f}"), 5)


FEW = 8  # filters shown per conv block unless every one is asked for


def layers_html(name: str, layers, strokes: int = 0, every: bool = False) -> str:
    """Every shown layer: a conv block's FEW most active filters' maps, large (or, with `every`,
    all of them in a grid), a dense layer's units as bars. One element, below the reading."""
    rows = []
    for number, layer in enumerate(layers, start=1):
        values = np.maximum(layer.values, 0)
        active = int((values > 0).sum())
        total = values.size
        if layer.is_maps:
            count = values.shape[2]
            chosen = np.arange(count) if every else np.sort(np.argsort(-values.sum(axis=(0, 1)))[:FEW])
            pixels, columns = _map_grid(values[..., chosen], max(float(values.max()), 1e-12))
            what = (f"all {count} filters" if every or count <= FEW
                    else f"the {len(chosen)} most active of {count} filters")
            note = (f"{what}, each square one filter's map; brighter is stronger ({active:,} of "
                    f"{total:,} values > 0)")
            width = GRID_WIDTH
        else:
            pixels = _bars(values)
            columns = pixels.shape[1]
            strongest = int(values.argmax())
            note = f"one bar per unit; {active} of {total} active, strongest unit {strongest}"
            width = min(columns * 8, GRID_WIDTH)  # bars are 8 px each, or 1 px in rows of GRID_WIDTH units
        rows.append(
            f'<div data-layer="{number}" data-kind="{"maps" if layer.is_maps else "units"}" '
            f'style="flex:0 0 {GRID_WIDTH}px;max-width:100%">'
            f'<div style="font-size:14px"><b>Layer {number}</b>: {html.escape(layer.name)}</div>'
            f'<img alt="layer {number}: {html.escape(layer.name)}" src="{charts.png_data_uri(pixels)}" '
            f'style="width:{width}px;max-width:100%;image-rendering:pixelated;margin:4px 0"/>'
            f'<div style="font-size:12px;color:#666">{note}</div></div>')
    return (f'<div data-inside="{html.escape(name)}" data-part="layers" data-strokes="{strokes}">'
            '<div style="font-weight:600">What each layer does with it</div>'
            '<div style="display:flex;flex-wrap:wrap;gap:12px 32px;margin-top:4px">'
            f'{"".join(rows)}</div></div>')


def _map_grid(maps: np.ndarray, largest: float) -> tuple[np.ndarray, int]:
    """Filters' maps (H, W, C) as tiles in a grid with 1-pixel gaps, scaled by the layer's
    largest value (`largest`), so strong and weak filters compare."""
    height, width, count = maps.shape
    columns = min(count, 8 if count <= 32 else 16)
    rows = -(-count // columns)
    grid = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), 40, np.uint8)
    scaled = (255 * np.clip(maps / largest, 0, 1)).astype(np.uint8)
    for index in range(count):
        r, c = divmod(index, columns)
        top, left = r * (height + 1), c * (width + 1)
        grid[top:top + height, left:left + width] = scaled[..., index]
    return grid, columns * (width + 1) - 1


def _bars(units: np.ndarray, height: int = 32) -> np.ndarray:
    """One column per unit, filled from the bottom as high as its value over the layer's largest;
    more units than GRID_WIDTH wrap onto further rows of bars, 4 pixels apart."""
    levels = np.round(height * units / max(float(units.max()), 1e-12)).astype(int)
    per_row = min(len(levels), GRID_WIDTH)
    levels = np.pad(levels, (0, -len(levels) % per_row), constant_values=-1).reshape(-1, per_row)
    rows = np.arange(height)[::-1][:, None]
    bands = [np.vstack([np.where(rows < row[None, :], 1, np.where(row[None, :] < 0, 2, 0)),
                        np.full((4, per_row), 2)]) for row in levels]
    colour = np.array([[245, 245, 245], [31, 119, 180], [255, 255, 255]], np.uint8)
    return colour[np.vstack(bands)[:-4]]
