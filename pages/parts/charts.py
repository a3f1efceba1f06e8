"""Charts (ECharts options) and HTML for the pages. Pure functions of data: no Streamlit here."""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
import pandas as pd
from PIL import Image

from mnist_core.mistakes import LOSS_BEYOND
from mnist_core.reading.preprocess import MIN_EXTENT

COLORS = {"train_error": "#1f77b4", "test_error": "#d62728"}
NAMES = {"train_error": "train error", "test_error": "test error"}


# Plot areas in pixels inside each chart, fixed (ECharts 6 would otherwise shrink them to fit
# their labels) so that a point or a cell can be found from the chart's box alone.
_FIXED = {"outerBoundsMode": "none"}
SWEEP_GRID = {"left": 70, "right": 20, "top": 20, "bottom": 70, **_FIXED}
HISTORY_GRID = {"left": 60, "right": 20, "top": 50, "bottom": 64, **_FIXED}
CONFUSION_GRID = {"left": 50, "right": 10, "top": 10, "bottom": 50, **_FIXED}
SWEEP_HEIGHT, HISTORY_HEIGHT, CONFUSION_HEIGHT = 440, 340, 360
RUN_MARKERS = "runs"  # the sweep chart's series with one marker per run: the one clicks select


def _axis_title(text: str, gap: int) -> dict:
    return {"name": text, "nameLocation": "middle", "nameGap": gap}


PHONE = {"maxWidth": 500}  # an ECharts media query: the chart itself is this narrow (a phone)
# On a phone a legend is a column of whole entries at the bottom, never a "1/3" pager, and the
# plot area makes room for it.
_PHONE_LEGEND = {"type": "plain", "orient": "vertical", "left": "center", "bottom": 0, "itemGap": 4,
                 "textStyle": {"fontSize": 11}}


OUTLINE = {"borderColor": "#000", "borderWidth": 2.5, "opacity": 1}
SEED_SPREAD = 0.16  # seeds' markers at one grid value sit this far apart (in grid steps), all reachable


def sweep_chart(frame: pd.DataFrame, by: str, order: str, x_title: str, selected: str | None = None) -> dict:
    """ECharts option: train and test error at each grid value of `by` (one axis step per value,
    in the order of column `order`, every value labelled): mean line, min-max band over seeds,
    one marker per run, each seed a little to the side so that every marker can be clicked. A
    click on a marker selects it; `clicked_run` says which run that is. The run whose key is
    `selected` has its two markers (train, test) outlined, and only those."""
    values = frame.drop_duplicates(by).sort_values(order)[by].tolist()
    seeds = int(frame["seed"].max()) + 1 if len(frame) else 1
    labels = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    at = frame[by].map({v: i for i, v in enumerate(values)})
    what = frame[by].map(dict(zip(values, labels)))
    what = "λ = " + what if by == "l2" else what + " neurons"
    series, runs = [], []
    for metric in ("train_error", "test_error"):
        color, name = COLORS[metric], NAMES[metric]
        stats = frame.groupby(by)[metric].agg(["mean", "min", "max", "size"]).loc[values]
        quiet = {"type": "line", "stack": metric, "symbol": "none", "silent": True, "smooth": False,
                 "lineStyle": {"opacity": 0}, "tooltip": {"show": False}}
        series.append({**quiet, "data": [[i, low] for i, low in enumerate(stats["min"])]})
        series.append({**quiet, "data": [[i, span] for i, span in enumerate(stats["max"] - stats["min"])],
                       "areaStyle": {"color": _faint(color)}})
        series.append({
            "type": "line", "name": f"{name} (mean of seeds)", "color": color, "symbol": "none",
            "smooth": False, "lineStyle": {"width": 2.5}, "z": 3,
            "data": [[i, row.mean, label, f"{row.mean:.4f}", f"{row.min:.4f} – {row.max:.4f}", int(row.size)]
                     for (i, row), label in zip(enumerate(stats.itertuples()), labels)],
            "tooltip": {"formatter": f"{'λ = ' if by == 'l2' else ''}{{@[2]}}<br>mean {name} {{@[3]}}"
                                     "<br>range {@[4]}<br>{@[5]} seeds"}})
        # Each marker has a name of its own: ECharts keys selection by name, and on a category
        # axis a nameless point is named after its category (one click outlined every seed).
        runs += [{"value": [float(i + SEED_SPREAD * (seed - (seeds - 1) / 2)), float(error), label,
                            int(seed), f"{error:.4f}", name],
                  "name": f"{key} {metric}",
                  "itemStyle": {"color": color, **(OUTLINE if key == selected else {})}}
                 for i, error, label, seed, key in zip(at, frame[metric], what, frame["seed"], frame["key"])]
    series.append({
        "type": "scatter", "id": RUN_MARKERS, "name": "one run (click to select)", "color": "#555",
        "symbolSize": 10, "z": 4, "data": runs, "selectedMode": "single", "xAxisIndex": 1,
        "itemStyle": {"opacity": 0.8, "borderColor": "#fff", "borderWidth": 1},
        "select": {"itemStyle": OUTLINE},  # the clicked marker at once; the option then outlines its run
        "tooltip": {"formatter": "{@[2]}, seed {@[3]}<br>{@[5]} {@[4]}<br>click to select"}})
    return {
        "animation": False, "grid": SWEEP_GRID, "tooltip": {"trigger": "item"},
        "legend": {"bottom": 0, "type": "scroll", "data": [f"{NAMES[m]} (mean of seeds)" for m in NAMES]
                   + ["one run (click to select)"]},
        "xAxis": [{"type": "category", "data": labels, "axisLabel": {"interval": 0},
                   **_axis_title(x_title, 30)},
                  # the run markers' axis: grid step i at i, as on the category axis, seeds beside it
                  {"type": "value", "min": -0.5, "max": len(labels) - 0.5, "show": False}],
        "yAxis": {"type": "value", **_axis_title("error (1 − accuracy)", 50)},
        "series": series,
        # on a phone every grid value stays labelled, turned so the labels do not run together
        "media": [{"query": PHONE, "option": {
            "grid": {**SWEEP_GRID, "left": 58, "bottom": 150}, "legend": _PHONE_LEGEND,
            "xAxis": [{"axisLabel": {"interval": 0, "rotate": 90, "fontSize": 10}, "nameGap": 56}, {}],
            "yAxis": {"nameGap": 38}}}],
    }


def clicked_run(selection: dict | None, frame: pd.DataFrame) -> str | None:
    """The key of the run whose marker is selected in `sweep_chart(frame, ...)`'s chart."""
    for group in (selection or {}).get("selected") or []:
        indices = group.get("data_indices") or []
        if group.get("series_id") == RUN_MARKERS and indices and 0 <= indices[0] < 2 * len(frame):
            return str(frame["key"].iloc[indices[0] % len(frame)])  # train markers, then test
    return None


GRID_CELLS = "cells"  # the grid chart's series with one marker per cell: the one clicks select
GRID_HEIGHT = 420
HEATMAP_GRID = {**SWEEP_GRID, "left": 80, "bottom": 110}


def grid_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (λ, widths) cell of a grid's runs: mean errors over seeds, how many seeds, and
    the run a click on the cell selects (its lowest seed). Widths in the frame's order, λ rising."""
    ordered = frame.sort_values(["seed"])
    cells = ordered.groupby(["hidden", "l2"], sort=False).agg(
        test_error=("test_error", "mean"), train_error=("train_error", "mean"), seeds=("seed", "size"),
        key=("key", "first"), keys=("key", list)).reset_index()
    widths = list(dict.fromkeys(frame["hidden"]))
    cells["x"] = cells["hidden"].map({w: i for i, w in enumerate(widths)})
    cells["y"] = cells["l2"].rank(method="dense").astype(int) - 1
    return cells.sort_values(["x", "y"]).reset_index(drop=True)


def grid_chart(cells: pd.DataFrame, selected: str | None = None) -> dict:
    """ECharts option: test error of each (λ, widths) cell as a heat map (mean over seeds, its
    value written in the cell); hover shows train error and seeds; a click on a cell selects its
    run (`clicked_cell_run` says which), and the cell holding run `selected` is outlined."""
    widths = list(dict.fromkeys(cells.sort_values("x")["hidden"]))
    lambdas = [f"{v:g}" for v in sorted(set(cells["l2"]))]
    low, high = float(cells["test_error"].min()), float(cells["test_error"].max())
    markers = [{"value": [int(row.x), int(row.y), f"{row.test_error:.2%}", f"{row.train_error:.2%}",
                          int(row.seeds), f"λ = {row.l2:g}, {row.hidden}"],
                "name": row.key,  # ECharts keys selection by name
                "itemStyle": OUTLINE if selected in row.keys else {}}
               for row in cells.itertuples()]
    return {
        "animation": False, "grid": HEATMAP_GRID,
        "tooltip": {"formatter": "{@[5]}<br>test error {@[2]}<br>train error {@[3]}<br>"
                                 "seeds {@[4]}<br>click to select"},
        "xAxis": {"type": "category", "data": widths, "splitArea": {"show": True},
                  **_axis_title("hidden layer widths (layer 1/layer 2)", 30)},
        "yAxis": {"type": "category", "data": lambdas, "splitArea": {"show": True},
                  **_axis_title("L2 lambda", 55)},
        "visualMap": {"min": low, "max": max(high, low + 1e-9), "calculable": False, "orient": "horizontal",
                      "left": "center", "bottom": 0, "dimension": 2, "seriesIndex": 0,
                      "text": [f"{high:.1%} test error", f"{low:.1%}"], "itemWidth": 14,
                      "inRange": {"color": GRID_COLORS}},
        "series": [
            {"type": "heatmap", "silent": True,
             "data": [[int(r.x), int(r.y), float(r.test_error)] for r in cells.itertuples()]},
            {"type": "scatter", "id": GRID_CELLS, "name": "one cell (click to select)", "symbol": "rect",
             "symbolSize": [64, 30], "itemStyle": {"color": "rgba(255,255,255,0.01)"}, "z": 4,
             "label": {"show": True, "formatter": "{@[2]}", "color": "#000", "fontSize": 12,
                       "textBorderColor": "#fff", "textBorderWidth": 2},
             "selectedMode": "single", "select": {"itemStyle": OUTLINE}, "data": markers},
        ],
        "media": [{"query": PHONE, "option": {"xAxis": {"axisLabel": {"rotate": 40}},
                                              "grid": {**HEATMAP_GRID, "bottom": 130}}}],
    }


GRID_COLORS = ["#f7fbff", "#9ecae1", "#4292c6", "#08519c"]  # light: low error


def clicked_cell_run(selection: dict | None, cells: pd.DataFrame) -> str | None:
    """The key of the run a click on a cell of `grid_chart(cells)` selects."""
    for group in (selection or {}).get("selected") or []:
        indices = group.get("data_indices") or []
        if group.get("series_id") == GRID_CELLS and indices and 0 <= indices[0] < len(cells):
            return str(cells["key"].iloc[indices[0]])
    return None


def _faint(hex_color: str, alpha: float = 0.15) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def history_chart(history: pd.DataFrame, metric: str, title: str) -> dict:
    """ECharts option: per-epoch train vs validation (test set) curve of `metric` ("loss" or
    "accuracy")."""
    def curve(column: str, name: str, color: str) -> dict:
        return {"type": "line", "name": name, "color": color, "symbolSize": 5, "smooth": False,
                "data": [[int(e), float(v)] for e, v in zip(history["epoch"], history[column])]}

    return {
        "animation": False, "grid": HISTORY_GRID, "title": {"text": title, "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis", "valueFormatter": "%.4f"}, "legend": {"bottom": 0},
        "xAxis": {"type": "value", **_epoch_ticks(int(history["epoch"].max())), **_axis_title("epoch", 28)},
        "yAxis": {"type": "value", "scale": True, **_axis_title(metric, 45)},
        "series": [curve(metric, f"train {metric}", COLORS["train_error"]),
                   curve(f"val_{metric}", f"validation {metric}", COLORS["test_error"])],
        "media": [{"query": PHONE, "option": {"grid": {**HISTORY_GRID, "bottom": 96},
                                               "legend": _PHONE_LEGEND}}],
    }


def _epoch_ticks(epochs: int) -> dict:
    """Evenly spaced epoch ticks: every epoch up to 10, else 0, 10, 20… (a first tick at 1 beside
    ticks at even numbers read "1, 2, 4, 6")."""
    if epochs <= 10:
        return {"min": 1, "max": epochs, "interval": 1}
    step = next(s for s in (2, 5, 10, 20, 50, 100, 200) if epochs / s <= 8)
    return {"min": 0, "max": epochs, "interval": step}


def confusion_chart(matrix: np.ndarray, outlined: tuple[int, int] | None = None) -> dict:
    """ECharts option: counts (rows: true, top to bottom; columns: predicted). Off-diagonal
    cells, the errors, are coloured by count; the diagonal, which would drown their colour
    scale, is grey. Every cell can be clicked (`clicked_cell` says which); the cell
    `outlined` (true, predicted) is outlined, and only that one."""
    def cell(true: int, predicted: int) -> dict:
        style = {"itemStyle": OUTLINE} if outlined == (true, predicted) else {}
        # a name of its own: ECharts keys selection by name, and an unnamed cell is named after its
        # column (one click outlined a whole column)
        return {"value": [predicted, true, int(matrix[true, predicted])],
                "name": f"true {true}, predicted {predicted}", **style}

    errors = [cell(t, p) for t in range(10) for p in range(10) if p != t]
    labels = [str(d) for d in range(10)]
    clickable = {"selectedMode": "single", "label": {"show": True}, "select": {"itemStyle": OUTLINE}}
    return {
        "animation": False, "grid": CONFUSION_GRID, "tooltip": {"trigger": "item"},
        "xAxis": {"type": "category", "data": labels, "position": "bottom", **_axis_title("predicted", 28)},
        "yAxis": {"type": "category", "data": labels, "inverse": True, **_axis_title("true", 30)},
        "visualMap": {"show": False, "seriesIndex": 0, "min": 0,
                      "max": max(1, max(c["value"][2] for c in errors)),
                      "inRange": {"color": ["#fff5f0", "#fcbba1", "#fb6a4a", "#cb181d", "#67000d"]}},
        "series": [
            {"type": "heatmap", "data": errors, **clickable,
             "itemStyle": {"borderColor": "#fff", "borderWidth": 1},
             "tooltip": {"formatter": "true {@[1]}, predicted {@[0]}: {@[2]}<br>click to show these"}},
            {"type": "heatmap", **clickable,
             "itemStyle": {"color": "#eeeeee", "borderColor": "#fff", "borderWidth": 1},
             "tooltip": {"formatter": "true {@[1]}, read as {@[0]}: {@[2]} correct"},
             "data": [cell(d, d) for d in range(10)]},
        ],
    }


def clicked_cell(selection: dict | None) -> tuple[str, str] | None:
    """(true, predicted) of the cell selected in `confusion_chart`'s chart; a diagonal cell
    (a correct reading) gives the same digit twice."""
    for group in (selection or {}).get("selected") or []:
        indices = group.get("data_indices") or []
        if group.get("series_index") == 0 and indices and 0 <= indices[0] < 90:
            true, column = divmod(int(indices[0]), 9)
            return str(true), str(column + (column >= true))  # the diagonal is not in the series
        if group.get("series_index") == 1 and indices and 0 <= indices[0] < 10:
            return str(indices[0]), str(indices[0])
    return None


NOT_A_DIGIT = "This does not look like a digit to the models."


def drawing_readout(image28: np.ndarray, probabilities: dict[str, np.ndarray],
                    differs: dict[str, bool], strokes: int, not_a_digit: bool = False,
                    calibrated: tuple[str, ...] = (), source: str = "") -> str:
    """HTML for everything the Draw page shows about a drawing, as one element; `source` says
    where it came from instead of the strokes count (a digit in a photo).

    What the models see (the 28x28 input, pixelated), then per model its digit, how sure
    it is and ten bars (digits 0-9) as tall as its probabilities, outlined in red when it
    disagrees with the majority, and how many strokes the reading covers. When the drawing is
    not a digit to the not-a-digit check, that is said first and the readings are greyed as
    what each model would say if it had to. One element, not
    a dozen widgets: it is resent after every stroke in every open tab, and each widget is
    a message of its own for the server to send and the browser to render.
    """
    rows = "".join(_model_readout(name, probs, differs.get(name, False) and not not_a_digit)
                   for name, probs in probabilities.items())
    readers = _readers(probabilities)
    if not_a_digit:
        rows = (f'<p data-testid="not-a-digit" style="background:#fdecea;color:#8a1c13;border-radius:6px;'
                f'padding:8px 10px;margin:0 0 6px;font-weight:600">{NOT_A_DIGIT}</p>'
                f'<p style="font-size:13px;color:#666;margin:0 0 6px">It is unlike the training '
                f'digits in the improved CNN\'s last hidden layer. What each model would read if it '
                f'had to:</p><div style="opacity:0.45">{rows}</div>')
        warning = ""
    elif len(readers) > 1 and not any(differs.values()):  # a tie: no majority to differ from
        warning = ('<p style="color:#d62728;margin:0 0 6px">The models split evenly: '
                   + "; ".join(f"{_names(names)} read {digit}" for digit, names in readers.items()) + ".</p>")
    elif any(differs.values()):
        most = max(len(names) for names in readers.values())
        against = ("the majority" if most * 2 > sum(len(n) for n in readers.values()) else
                   f"the most common reading ({most} of {sum(len(n) for n in readers.values())} models)")
        warning = ('<p style="color:#d62728;margin:0 0 6px">The models disagree: the ones outlined '
                   f'in red differ from {against}.</p>')
    else:
        warning = ""
    count = html.escape(source) or f"Read after {strokes} stroke{'' if strokes == 1 else 's'}."
    calibration = ('<p style="font-size:13px;color:#666;margin:2px 0 0">Percentages are calibrated '
                   '(temperature scaling, see Overview): of the test digits a model gives 90%, about '
                   '90% are read right.</p>' if calibrated else "")
    # flex-wrap: on a phone the input goes above the readings instead of pushing them off screen
    return (f'<div data-read-strokes="{strokes}" '
            f'style="display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start">'
            f'<div style="flex:0 0 150px"><div style="font-weight:600">What the models see</div>'
            f'<img alt="the drawing as a 28x28 MNIST-style image" src="{_png_data_uri(image28)}" '
            f'style="width:140px;height:140px;image-rendering:pixelated;margin:6px 0"/>'
            f'<div style="font-size:12px;color:#666">Cropped to the ink, scaled into 20×20, centred '
            f'by centre of mass.</div></div>'
            f'<div style="flex:1 1 280px;min-width:0">{warning}{rows}'
            f'<p style="font-size:13px;color:#666;margin:4px 0 0">{count}</p>{calibration}</div></div>')


def _readers(probabilities: dict[str, np.ndarray]) -> dict[int, list[str]]:
    """The names of the models reading each digit, the most read digit first."""
    readers: dict[int, list[str]] = {}
    for name, probs in probabilities.items():
        readers.setdefault(int(np.argmax(probs)), []).append(name)
    return dict(sorted(readers.items(), key=lambda item: (-len(item[1]), item[0])))


def _names(names: list[str]) -> str:
    escaped = [f"<b>{html.escape(n)}</b>" for n in names]
    return escaped[0] if len(escaped) == 1 else ", ".join(escaped[:-1]) + " and " + escaped[-1]


def with_article(digit: int) -> str:
    """"a 4", "an 8": the article a digit takes when said aloud."""
    return f"{'an' if digit == 8 else 'a'} {digit}"


def reading_summary(probabilities: dict[str, np.ndarray], not_a_digit: bool = False) -> str:
    """One line for under the canvas, so a phone shows the reading beside the drawing: what the
    models read, and how many read it."""
    counts = [(len(names), digit) for digit, names in _readers(probabilities).items()]
    total = len(probabilities)
    if not_a_digit:
        text = "<b>Not a digit</b>, to the models (their guesses are beside it, greyed)."
    elif len(counts) == 1:
        text = f"Read as <b>{counts[0][1]}</b> by {'the model' if total == 1 else f'all {total} models'}."
    elif counts[0][0] == counts[1][0]:
        text = "The models split: " + ", ".join(f"{n} read <b>{d}</b>" for n, d in counts) + "."
    else:
        text = (f"Read as <b>{counts[0][1]}</b> by {counts[0][0]} of {total} models; "
                + ", ".join(f"{n} read{'s' if n == 1 else ''} {d}" for n, d in counts[1:]) + ".")
    return f'<div data-testid="reading-summary" style="font-size:15px;margin:2px 0">{text}</div>'


def models_table(rows: list[dict]) -> str:
    """HTML table of the named models; on a narrow screen each model becomes a card of its own
    (label: value lines) instead of a table wider than the screen."""
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td data-label="{html.escape(c)}">{html.escape(str(row[c]))}</td>'
                                    for c in columns) + "</tr>" for row in rows)
    style = ("<style>.models{border-collapse:collapse;width:100%;font-size:14px}"
             ".models th,.models td{border-bottom:1px solid #e6e6e6;padding:6px 8px;text-align:left;"
             "vertical-align:top}.models th{font-weight:600;color:#555}"
             "@media (max-width:700px){.models thead{display:none}.models tr{display:block;"
             "border:1px solid #ddd;border-radius:8px;margin-bottom:10px;padding:4px 0}"
             ".models td{display:flex;gap:8px;border:0;padding:3px 10px}"
             ".models td::before{content:attr(data-label);flex:0 0 42%;color:#666}}</style>")
    return f'{style}<table class="models"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'



def drawing_invitation(model_names: list[str], too_small: float | None = None, strokes: int = 0) -> str:
    """HTML for the Draw page's readout while there is no digit to read, naming the models that
    will read one; with `too_small` (the drawing's extent, a share of the canvas), why not yet.
    Like the readout, it carries the number of strokes it was made from (`data-read-strokes`):
    the sign that a stroke has been read.

    HTML like the readout itself, so the readout is one element of one kind throughout:
    the first stroke only changes its content (no element to mount, no code to load).
    """
    names = ", ".join(f"<b>{html.escape(name)}</b>" for name in model_names)
    if too_small is None:
        text = "Draw a digit on the black canvas: every model will classify it after each stroke."
    else:
        text = (f"Draw a bigger digit: this drawing reaches {too_small:.0%} of the canvas beyond "
                f"the pen's own width, and a digit needs at least {MIN_EXTENT:.0%}. A tap, a dot or "
                "a small blob is not read, so no model guesses at it.")
    return (f'<div data-testid="drawing-invitation" data-read-strokes="{strokes}" '
            f'style="background:rgba(28,131,225,0.1);color:rgb(0,66,128);border-radius:8px;padding:16px">{text}'
            f'<div style="margin-top:8px;font-size:14px">Models: {names}</div></div>')


def _model_readout(name: str, probs: np.ndarray, differs: bool) -> str:
    top = int(np.argmax(probs))
    bars = "".join(
        f'<div title="{digit}: {p:.1%}" style="flex:1;text-align:center;font-size:11px">'
        f'<div style="height:40px;display:flex;align-items:flex-end;justify-content:center">'
        f'<div style="width:70%;height:{max(p * 40, 1):.0f}px;background:'
        f'{"#1f77b4" if digit == top else "#9ecae1"}"></div></div>{digit}</div>'
        for digit, p in enumerate(map(float, probs)))
    border = "2px solid #d62728" if differs else "1px solid #ddd"
    return (f'<div data-model="{html.escape(name)}" style="border:{border};border-radius:6px;'
            f'padding:4px 8px;margin-bottom:6px;display:flex;flex-wrap:wrap;gap:4px 12px;'
            f'align-items:center"><div style="flex:1 0 120px;max-width:180px">'
            f'<div style="font-size:13px;overflow-wrap:anywhere">'
            f'{html.escape(name)}</div><span data-testid="predicted-digit" style="font-size:30px;'
            f'font-weight:700">{top}</span> <span style="font-size:13px">{probs[top]:.1%} sure'
            f'</span></div><div style="flex:1 1 200px;min-width:0;display:flex;gap:2px">{bars}</div></div>')


def _png_data_uri(image28: np.ndarray) -> str:
    return png_data_uri((np.clip(image28, 0, 1) * 255).astype(np.uint8))


def png_data_uri(pixels: np.ndarray) -> str:
    """A data: URI of a PNG of uint8 pixels, (H, W) grey or (H, W, 3) colour."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def mistake_grid(rows: pd.DataFrame, images: dict, other: pd.DataFrame | None = None,
                 by: str = "confidence") -> str:
    """HTML for misclassified test images with their captions, as one element (50 images as
    50 widgets cost the page a second of rendering): "true → predicted" with the confidence
    (or, `by` "loss", the loss the grid is sorted by) and the test index; with `other` (run B's
    error table by index), both runs' predictions."""
    cells = []
    for row in rows.itertuples(index=False):
        index, true, predicted = int(row.index), int(row.true), int(row.predicted)
        if other is None:
            loss = f"&gt; {LOSS_BEYOND:.1f}" if np.isinf(row.loss) else f"{row.loss:.2f}"
            figure = f"loss {loss}" if by == "loss" else f"{row.confidence:.2%}"
            caption = f"<b>{true} → {predicted}</b> {figure}"
        else:
            b = other.loc[index]
            caption = (f"true <b>{true}</b><br><span style='white-space:nowrap'>A: {predicted} "
                       f"({row.confidence:.0%})</span> <span style='white-space:nowrap'>B: "
                       f"{int(b['predicted'])} ({b['confidence']:.0%})</span>")
        cells.append(
            f'<figure data-mistake="{index}" data-true="{true}" data-predicted="{predicted}" '
            f'style="margin:0"><img alt="test image {index}" src="{_png_data_uri(images[index] / 255)}" '
            f'style="width:84px;height:84px;image-rendering:pixelated;border-radius:6px"/>'
            f'<figcaption style="font-size:13px;line-height:1.3">{caption}<br>'
            f'<span style="color:#666">#{index}</span></figcaption></figure>')
    return ('<div style="display:grid;grid-template-columns:repeat(auto-fill,minmax(96px,1fr));'
            f'gap:12px 8px">{"".join(cells)}</div>')


def suspect_card(row, image: np.ndarray | None) -> str:
    """HTML for one suspect test image: the image, "given → suggested", how many of the voting
    models agree and how sure they are; each model's reading on hover."""
    index, given, suggested = int(row["index"]), int(row["given"]), int(row["suggested"])
    votes = "\n".join(f"{name}: {digit} ({sure:.1%})" for name, (digit, sure) in row["votes"].items())
    picture = (f'<img alt="test image {index}" src="{_png_data_uri(image / 255)}" '
               'style="width:96px;height:96px;image-rendering:pixelated;border-radius:6px"/>'
               if image is not None else
               '<div style="width:96px;height:96px;display:flex;align-items:center;text-align:center;'
               'font-size:12px;color:#666;border:1px dashed #bbb;border-radius:6px">image not stored '
               '(set MNIST_PATH)</div>')
    return (f'<figure data-suspect="{index}" data-given="{given}" data-suggested="{suggested}" '
            f'title="{html.escape(votes)}" style="margin:0">{picture}'
            f'<figcaption style="font-size:13px;line-height:1.35">'
            f'#{int(row["rank"])} · test image {index}<br>'
            f'given <b>{given}</b> → suggested <b>{suggested}</b><br>'
            f'<span style="color:#555">{int(row["agree"])} of {len(row["votes"])} models read '
            f'{suggested}; {row["confidence"]:.1%} on average'
            f'{" · flagged" if row["flagged"] else ""}</span></figcaption></figure>')


def reliability_chart(calibration, name: str) -> dict:
    """ECharts option: a reliability diagram, accuracy against confidence per bin, on the held
    half of the test set, as the model gives its probabilities and after temperature scaling."""
    def curve(reliability, label: str, color: str) -> dict:
        filled = reliability.counts > 0
        most = max(int(reliability.counts.max()), 1)
        return {"type": "line", "name": label, "color": color, "smooth": False,
                "data": [{"value": [round(float(c), 4), round(float(a), 4), int(n)],  # area ~ images
                          "symbolSize": round(4 + 16 * math.sqrt(n / most), 1)} for c, a, n in zip(
                    reliability.confidence[filled], reliability.accuracy[filled],
                    reliability.counts[filled])],
                "tooltip": {"formatter": f"{label}<br>mean confidence {{@[0]}}<br>accuracy {{@[1]}}"
                                         "<br>{@[2]} images"}}

    before, after = calibration.before, calibration.after
    return {
        "animation": False, "grid": HISTORY_GRID, "tooltip": {"trigger": "item"}, "legend": {"bottom": 0},
        "title": {"text": f"{name}: accuracy against confidence", "textStyle": {"fontSize": 14}},
        "xAxis": {"type": "value", "min": 0, "max": 1, **_axis_title("confidence (bins of 1/15)", 28)},
        "yAxis": {"type": "value", "min": 0, "max": 1, **_axis_title("accuracy", 40)},
        "series": [
            {"type": "line", "name": "perfectly calibrated", "color": "#999", "symbol": "none",
             "lineStyle": {"type": "dashed"}, "data": [[0, 0], [1, 1]], "silent": True,
             "tooltip": {"show": False}},
            curve(before, f"as given (ECE {before.ece:.2%})", COLORS["test_error"]),
            curve(after, f"after scaling, T = {calibration.temperature:.2f} (ECE {after.ece:.2%})",
                  COLORS["train_error"]),
        ],
        "media": [{"query": PHONE, "option": {"grid": {**HISTORY_GRID, "bottom": 110},
                                               "legend": _PHONE_LEGEND}}],
    }


COMPARE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def compared_history_chart(histories: dict[str, dict[str, list]], metric: str, epochs: int | None = None,
                           title: str | None = None) -> dict:
    """ECharts option: `metric` per epoch for several runs (label -> {metric: one value per epoch}),
    training solid and validation dashed in one colour per run, one legend entry per run. With
    `epochs`, the axis spans that many epochs (a run still training fills it as it goes)."""
    series = []
    for i, (label, history) in enumerate(histories.items()):
        color = COMPARE_COLORS[i % len(COMPARE_COLORS)]
        for column, dashed in ((metric, False), (f"val_{metric}", True)):
            values = history.get(column, [])
            series.append({"type": "line", "name": label, "color": color, "symbolSize": 4, "smooth": False,
                           "lineStyle": {"type": "dashed" if dashed else "solid"},
                           "data": [[epoch, None if v is None or not math.isfinite(v) else float(v)]
                                    for epoch, v in enumerate(values, start=1)]})
    most = epochs or max((len(h.get(metric, [])) for h in histories.values()), default=1)
    return {
        "animation": False, "grid": {**HISTORY_GRID, "bottom": 40 + 20 * len(histories)},
        "title": {"text": title or f"{metric.capitalize()} per epoch (solid: training, dashed: validation "
                                   "= test set)", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis", "valueFormatter": "%.4f"},
        "legend": {"bottom": 0, "orient": "vertical", "left": "center", "textStyle": {"fontSize": 11}},
        "xAxis": {"type": "value", **_epoch_ticks(max(1, most)), **_axis_title("epoch", 28)},
        "yAxis": {"type": "value", "scale": True, **_axis_title(metric, 45)},
        "series": series,
    }


def per_digit_chart(accuracies: dict[str, np.ndarray]) -> dict:
    """ECharts option: each run's test accuracy per digit, bars side by side."""
    return {
        "animation": False, "grid": {**HISTORY_GRID, "top": 40, "bottom": 40 + 20 * len(accuracies)},
        "title": {"text": "Test accuracy per digit", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis", "valueFormatter": "%.4f"},
        "legend": {"bottom": 0, "orient": "vertical", "left": "center", "textStyle": {"fontSize": 11}},
        "xAxis": {"type": "category", "data": [str(d) for d in range(10)], **_axis_title("digit", 26)},
        "yAxis": {"type": "value", "scale": True, "max": 1, **_axis_title("accuracy", 45)},
        "series": [{"type": "bar", "name": label, "color": color,
                    "data": [round(float(a), 4) for a in values]}
                   for (label, values), color in zip(accuracies.items(), COMPARE_COLORS)],
    }


PARALLEL_AXES = (("hidden1", "layer 1"), ("hidden2", "layer 2"), ("l2", "λ"), ("epochs", "epochs"),
                 ("seed", "seed"), ("limit", "training images"), ("test_accuracy", "test accuracy"))


def parallel_chart(frame: pd.DataFrame) -> dict:
    """ECharts option: one line per run across its hyperparameters and test accuracy (a CNN has
    no hidden widths: 0), coloured by test accuracy."""
    values = frame.assign(hidden1=frame["hidden1"].fillna(0), hidden2=frame["hidden2"].fillna(0))
    images = {"type": "log", "logBase": 10, "min": 10 ** math.floor(math.log10(values["limit"].min())),
              "max": 10 ** math.ceil(math.log10(values["limit"].max()))}  # whole powers of ten
    special = {"limit": images, "test_accuracy": {"scale": True}}
    axes = [{"dim": i, "name": name, "axisLabel": {"fontSize": 10}, **special.get(column, {})}
            for i, (column, name) in enumerate(PARALLEL_AXES)]
    low, high = float(values["test_accuracy"].min()), float(values["test_accuracy"].max())
    return {
        "animation": False,
        "parallel": {"left": 40, "right": 70, "top": 40, "bottom": 30},
        "parallelAxis": axes,
        "visualMap": {"show": False, "dimension": len(PARALLEL_AXES) - 1, "min": low,
                      "max": max(high, low + 1e-6), "inRange": {"color": ["#d62728", "#ff7f0e", "#2ca02c"]}},
        # on a phone the axes lie one above another, their labels along the screen's width
        "media": [{"query": PHONE, "option": {
            "parallel": {"layout": "vertical", "left": 100, "right": 30, "top": 20, "bottom": 30},
            "parallelAxis": [{"nameLocation": "start", "nameGap": 24, "nameTextStyle": {"fontSize": 11},
                              "name": name.replace("training ", "").replace("test ", "")}
                             for _, name in PARALLEL_AXES]}}],
        "series": [{"type": "parallel", "lineStyle": {"width": 1.5, "opacity": 0.6},
                    "data": [[float(v) for v in row] for row in
                             values[[c for c, _ in PARALLEL_AXES]].itertuples(index=False)]}],
    }
