"""Figures (plotly) and HTML for the pages. Pure functions of data: no Streamlit here."""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image

from mnist_core.preprocess import MIN_EXTENT

COLORS = {"train_error": "#1f77b4", "test_error": "#d62728"}
NAMES = {"train_error": "train error", "test_error": "test error"}


def lambda_positions(values: pd.Series) -> tuple[pd.Series, list[float], list[str]]:
    """x positions on a log10 axis, with lambda = 0 one decade left of the smallest positive value,
    and a tick labelled with every lambda present."""
    positive = values[values > 0]
    zero_at = (math.floor(np.log10(positive.min())) if len(positive) else -3) - 1
    x = values.map(lambda v: math.log10(v) if v > 0 else zero_at)
    present = sorted(set(values))
    return x, [math.log10(v) if v > 0 else zero_at for v in present], [f"{v:g}" for v in present]


def width_ticks(frame: pd.DataFrame) -> tuple[list[int], list[str]]:
    """One tick per width pair present, at its total neurons, labelled like "600/240"."""
    pairs = frame.drop_duplicates("hidden").sort_values("neurons")
    return pairs["neurons"].tolist(), pairs["hidden"].tolist()


def sweep_figure(frame: pd.DataFrame, by: str, x: pd.Series, x_title: str, hover: pd.Series,
                 ticks: tuple[list, list] | None = None, log_x: bool = False) -> go.Figure:
    """Train and test error against x: mean line, min-max band over seeds, one marker per run.

    Markers carry the run key as customdata, so a click selects that run.
    """
    frame = frame.assign(_x=x.values, _hover=hover.values)
    figure = go.Figure()
    for metric in ("train_error", "test_error"):
        stats = (frame.groupby(by).agg(x=("_x", "first"), mean=(metric, "mean"), low=(metric, "min"),
                                       high=(metric, "max"), n=(metric, "size"))
                 .sort_values("x"))
        color = COLORS[metric]
        figure.add_trace(go.Scatter(
            x=list(stats["x"]) + list(stats["x"])[::-1],
            y=list(stats["high"]) + list(stats["low"])[::-1],
            fill="toself", fillcolor=_faint(color), line={"width": 0}, hoverinfo="skip",
            showlegend=False, name=f"{NAMES[metric]} range"))
        figure.add_trace(go.Scatter(
            x=stats["x"], y=stats["mean"], mode="lines", line={"color": color, "width": 2.5},
            name=f"{NAMES[metric]} (mean of seeds)",
            customdata=np.stack([stats.index.astype(str), stats["n"], stats["low"], stats["high"]], 1),
            hovertemplate=(f"{by}=%{{customdata[0]}}<br>mean {NAMES[metric]} %{{y:.4f}}"
                           "<br>range %{customdata[2]:.4f} – %{customdata[3]:.4f}"
                           "<br>%{customdata[1]} seeds<extra></extra>")))
        figure.add_trace(go.Scatter(
            x=frame["_x"], y=frame[metric], mode="markers", name=f"{NAMES[metric]} per seed",
            marker={"color": color, "size": 8, "opacity": 0.75, "line": {"width": 1, "color": "white"}},
            customdata=np.stack([frame["key"], frame["_hover"], frame["seed"]], 1),
            hovertemplate=(f"%{{customdata[1]}}, seed %{{customdata[2]}}<br>{NAMES[metric]} "
                           "%{y:.4f}<br>click to select<extra></extra>")))
    layout = dict(xaxis_title=x_title, yaxis_title="error (1 − accuracy)", hovermode="closest",
                  height=460, margin={"t": 30, "b": 40}, clickmode="event+select",
                  legend={"orientation": "h", "y": -0.2})
    figure.update_layout(**layout)
    if ticks:
        figure.update_xaxes(tickvals=ticks[0], ticktext=ticks[1])
    if log_x:
        figure.update_xaxes(type="log")
    return figure


def _faint(hex_color: str, alpha: float = 0.15) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def history_figure(history: pd.DataFrame, metric: str, title: str) -> go.Figure:
    """Per-epoch train vs validation (test set) curve of `metric` ("loss" or "accuracy")."""
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=history["epoch"], y=history[metric], name=f"train {metric}",
                                mode="lines+markers", line={"color": COLORS["train_error"]}))
    figure.add_trace(go.Scatter(x=history["epoch"], y=history[f"val_{metric}"],
                                name=f"validation {metric}", mode="lines+markers",
                                line={"color": COLORS["test_error"]}))
    figure.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, height=340,
                         margin={"t": 40, "b": 30}, hovermode="x unified",
                         legend={"orientation": "h", "y": -0.25})
    return figure


def confusion_figure(matrix: np.ndarray) -> go.Figure:
    """Heatmap of counts (rows: true, columns: predicted); off-diagonal cells are the errors."""
    shown = matrix.astype(float).copy()
    np.fill_diagonal(shown, np.nan)  # the diagonal would drown the errors' colour scale
    figure = go.Figure(go.Heatmap(
        z=shown, x=[str(i) for i in range(10)], y=[str(i) for i in range(10)], colorscale="Reds",
        text=matrix, texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
        showscale=False, xgap=1, ygap=1))
    # Plotly reports no selection for a click on a heatmap: an invisible marker on every cell
    # takes the click instead, so the page learns which cell it was.
    true, predicted = np.meshgrid(range(10), range(10), indexing="ij")
    figure.add_trace(go.Scatter(
        x=predicted.ravel().astype(str), y=true.ravel().astype(str), mode="markers",
        marker={"symbol": "square", "size": 30, "color": "rgba(0,0,0,0)"},
        customdata=matrix.ravel(), showlegend=False,
        hovertemplate="true %{y}, predicted %{x}: %{customdata}<br>click to show these<extra></extra>"))
    figure.update_layout(xaxis_title="predicted", yaxis_title="true", height=420,
                         yaxis={"autorange": "reversed", "type": "category"},
                         xaxis={"type": "category", "side": "bottom"},
                         margin={"t": 20, "b": 30},
                         clickmode="event+select")
    return figure


def drawing_readout(image28: np.ndarray, probabilities: dict[str, np.ndarray],
                    differs: dict[str, bool], strokes: int) -> str:
    """HTML for everything the Draw page shows about a drawing, as one element.

    What the models see (the 28x28 input, pixelated), then per model its digit, how sure
    it is and ten bars (digits 0-9) as tall as its probabilities, outlined in red when it
    disagrees with the majority, and how many strokes the reading covers. One element, not
    a dozen widgets: it is resent after every stroke in every open tab, and each widget is
    a message of its own for the server to send and the browser to render.
    """
    rows = "".join(_model_readout(name, probs, differs.get(name, False))
                   for name, probs in probabilities.items())
    warning = ('<p style="color:#d62728;margin:0 0 6px">The models disagree: the ones outlined '
               'in red differ from the majority.</p>') if any(differs.values()) else ""
    count = f"Read after {strokes} stroke{'' if strokes == 1 else 's'}."
    return (f'<div style="display:flex;gap:18px;align-items:flex-start">'
            f'<div style="flex:0 0 150px"><div style="font-weight:600">What the models see</div>'
            f'<img alt="the drawing as a 28x28 MNIST-style image" src="{_png_data_uri(image28)}" '
            f'style="width:140px;height:140px;image-rendering:pixelated;margin:6px 0"/>'
            f'<div style="font-size:12px;color:#666">Cropped to the ink, scaled into 20×20, centred '
            f'by centre of mass.</div></div>'
            f'<div style="flex:1">{warning}{rows}'
            f'<p style="font-size:13px;color:#666;margin:4px 0 0">{count}</p></div></div>')


def drawing_invitation(model_names: list[str], too_small: float | None = None) -> str:
    """HTML for the Draw page's readout while there is no digit to read, naming the models that
    will read one; with `too_small` (the drawing's extent, a share of the canvas), why not yet.

    HTML like the readout itself, so the readout is one element of one kind throughout:
    the first stroke only changes its content (no element to mount, no code to load).
    """
    names = ", ".join(f"<b>{html.escape(name)}</b>" for name in model_names)
    if too_small is None:
        text = "Draw a digit on the black canvas: every model will classify it after each stroke."
    else:
        text = (f"Draw a bigger digit: this drawing spans {too_small:.0%} of the canvas, and a digit "
                f"needs at least {MIN_EXTENT:.0%}. A tap or a tiny scribble is not read, so no model "
                "guesses at it.")
    return ('<div style="background:rgba(28,131,225,0.1);color:rgb(0,66,128);border-radius:8px;'
            f'padding:16px">{text}<div style="margin-top:8px;font-size:14px">Models: {names}</div></div>')


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
            f'padding:4px 8px;margin-bottom:6px;display:flex;gap:12px;align-items:center">'
            f'<div style="flex:0 0 180px"><div style="font-size:13px;overflow-wrap:anywhere">'
            f'{html.escape(name)}</div><span data-testid="predicted-digit" style="font-size:30px;'
            f'font-weight:700">{top}</span> <span style="font-size:13px">{probs[top]:.1%} sure'
            f'</span></div><div style="flex:1;display:flex;gap:2px">{bars}</div></div>')


def _png_data_uri(image28: np.ndarray) -> str:
    return png_data_uri((np.clip(image28, 0, 1) * 255).astype(np.uint8))


def png_data_uri(pixels: np.ndarray) -> str:
    """A data: URI of a PNG of uint8 pixels, (H, W) grey or (H, W, 3) colour."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def mistake_grid(rows: pd.DataFrame, images: dict, other: pd.DataFrame | None = None) -> str:
    """HTML for misclassified test images with their captions, as one element (50 images as
    50 widgets cost the page a second of rendering): "true → predicted confidence" and the test
    index; with `other` (run B's error table by index), both runs' predictions."""
    cells = []
    for row in rows.itertuples(index=False):
        index, true, predicted = int(row.index), int(row.true), int(row.predicted)
        if other is None:
            caption = f"<b>{true} → {predicted}</b> {row.confidence:.2%}"
        else:
            b = other.loc[index]
            caption = (f"<b>{true}</b>: A → {predicted} {row.confidence:.1%}, "
                       f"B → {int(b['predicted'])} {b['confidence']:.1%}")
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
            f'<span style="color:#555">{int(row["agree"])} of {len(row["votes"])} models, '
            f'{row["confidence"]:.1%}{" · flagged" if row["flagged"] else ""}</span></figcaption></figure>')
