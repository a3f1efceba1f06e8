"""Plotly figures for the pages. Pure functions of DataFrames: no Streamlit here."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

COLORS = {"train_error": "#1f77b4", "test_error": "#d62728"}
NAMES = {"train_error": "train error", "test_error": "test error"}


def lambda_positions(values: pd.Series) -> tuple[pd.Series, list[float], list[str]]:
    """x positions on a log10 axis, with lambda = 0 one decade left of the smallest positive value."""
    positive = values[values > 0]
    low = math.floor(np.log10(positive.min())) if len(positive) else -3
    zero_at = low - 1
    x = values.map(lambda v: math.log10(v) if v > 0 else zero_at)
    top = math.ceil(np.log10(positive.max())) if len(positive) else low
    ticks = [zero_at] + list(range(low, top + 1))
    labels = ["0"] + [f"{10.0 ** t:g}" for t in range(low, top + 1)]
    return x, ticks, labels


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
                                mode="lines+markers"))
    figure.add_trace(go.Scatter(x=history["epoch"], y=history[f"val_{metric}"],
                                name=f"validation {metric}", mode="lines+markers"))
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
    figure.update_layout(xaxis_title="predicted", yaxis_title="true", height=420,
                         yaxis={"autorange": "reversed", "dtick": 1}, xaxis={"dtick": 1},
                         margin={"t": 20, "b": 30},
                         clickmode="event+select")
    return figure


def probability_bars(probabilities: dict[str, np.ndarray], highlight: dict[str, bool]) -> str:
    """HTML: per model, ten bars (digits 0-9) as tall as its probabilities, the top one dark.

    Plain HTML rather than a chart: it redraws after every stroke in every open tab, and a
    browser draws it for a fraction of a chart's cost.
    """
    def bar(digit: int, probability: float, top: bool) -> str:
        colour, weight = ("#1f77b4", 700) if top else ("#9ecae1", 400)
        return (f'<div title="{digit}: {probability:.1%}" style="flex:1;display:flex;'
                f'flex-direction:column;justify-content:flex-end;align-items:center;height:64px">'
                f'<div style="width:70%;height:{max(probability * 48, 1):.0f}px;background:{colour}">'
                f'</div><div style="font-size:12px;font-weight:{weight}">{digit}</div></div>')

    rows = []
    for name, probs in probabilities.items():
        top = int(np.argmax(probs))
        bars = "".join(bar(digit, float(p), digit == top) for digit, p in enumerate(probs))
        border = "2px solid #d62728" if highlight.get(name) else "1px solid #ddd"
        rows.append(f'<div style="border:{border};border-radius:6px;padding:4px 8px;margin-bottom:6px">'
                    f'<div style="font-size:13px">{html.escape(name)}: <b>{top}</b> ({probs[top]:.1%})'
                    f'</div><div style="display:flex;gap:2px">{bars}</div></div>')
    return "".join(rows)
