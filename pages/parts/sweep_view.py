"""The lambda and width sweep pages: grid controls, curves over seeds, background training."""

from __future__ import annotations

import hashlib

import streamlit as st

from mnist_core import jobs
from mnist_core.catalog import (
    REFERENCE_LAMBDAS,
    REFERENCE_WIDTHS,
    best_point,
    lambda_configs,
    parse_lambdas,
    parse_width_pairs,
    runs_table,
    width_configs,
)
from mnist_core.configs import ConfigError
from mnist_core.store import StoreError
from pages.parts import charts, common

EPOCH_CHOICES = (1, 2, 5, 10, 20, 30, 60)
IMAGE_CHOICES = (1000, 2000, 5000, 10000, 30000, 60000)


def _lambda_grid() -> list[float] | None:
    mode = st.radio("Lambda grid", ["Reference grid", "Log range", "Explicit values"], horizontal=True,
                    key="lambda_grid_mode")
    if mode == "Reference grid":
        return list(REFERENCE_LAMBDAS)
    if mode == "Log range":
        low, high = st.slider("log₁₀ λ range", -5.0, 0.0, (-3.0, -0.5), 0.5, key="lambda_range")
        count = st.slider("Points in range", 2, 12, 6, key="lambda_count")
        zero = st.checkbox("Include λ = 0", True, key="lambda_zero")
        values = [round(10 ** (low + (high - low) * i / (count - 1)), 6) for i in range(count)]
        return sorted(set(values + ([0.0] if zero else [])))
    text = st.text_input("Lambdas, comma-separated", "0, 0.001, 0.01, 0.1", key="lambda_values",
                         help="Numbers >= 0 separated by commas, like 0, 0.001, 0.01")
    return _parsed(parse_lambdas, text, "lambda")


def _width_grid() -> list[tuple[int, int]] | None:
    mode = st.radio("Width grid", ["Reference grid", "Range of the reference", "Explicit pairs"],
                    horizontal=True, key="width_grid_mode")
    if mode == "Reference grid":
        return list(REFERENCE_WIDTHS)
    if mode == "Range of the reference":
        labels = [f"{a}/{b}" for a, b in REFERENCE_WIDTHS]
        low, high = st.select_slider("Layer sizes from … to", labels, (labels[0], labels[-1]),
                                     key="width_range")
        return list(REFERENCE_WIDTHS[labels.index(low):labels.index(high) + 1])
    text = st.text_input("Pairs layer1:layer2, comma-separated", "10:5, 25:10, 100:40",
                         key="width_values", help="Width pairs like 25:10, separated by commas")
    return _parsed(parse_width_pairs, text, "width")


def _parsed(parse, text: str, kind: str):
    """The grid typed in, or None with the reason shown beside the input (and kept for the main
    area, which goes on showing the last grid that was valid)."""
    try:
        grid = parse(text)
    except ConfigError as exc:
        st.error(str(exc))
        st.session_state[f"{kind}_grid_problem"] = str(exc)
        return None
    st.session_state.pop(f"{kind}_grid_problem", None)
    return grid


def render(kind: str) -> None:
    """The whole page for kind 'lambda' or 'width'."""
    is_lambda = kind == "lambda"
    with st.sidebar:
        st.subheader("Grid")
        grid = _lambda_grid() if is_lambda else _width_grid()
        epochs = st.select_slider("Epochs", EPOCH_CHOICES, 60, key=f"{kind}_epochs")
        seeds = st.slider("Seeds", 1, 3, 3, key=f"{kind}_seeds")
        images = st.select_slider("Training images", IMAGE_CHOICES, 60000, key=f"{kind}_images")
    valid = grid is not None
    if not valid:
        grid = st.session_state.get(f"{kind}_last_grid") or list(REFERENCE_LAMBDAS if is_lambda else
                                                                 REFERENCE_WIDTHS)
        st.error(f"{'Lambdas' if is_lambda else 'Widths'}: {st.session_state.get(f'{kind}_grid_problem')}. "
                 "Showing the last grid that was valid until the input is fixed.")
    else:
        st.session_state[f"{kind}_last_grid"] = grid
    limit = None if images == 60000 else images
    try:
        if is_lambda:
            configs = lambda_configs(grid, range(seeds), epochs, limit)
        else:
            configs = width_configs(grid, range(seeds), epochs, limit)
    except ConfigError as exc:
        st.error(str(exc))
        return
    fp = common.fingerprint()
    runs = [common.run_by_key(c.key(fp)) for c in configs]
    missing = [c for c, r in zip(configs, runs) if r is None]
    frame = runs_table(runs)
    st.caption(f"{len(configs) - len(missing)} of {len(configs)} runs stored · {epochs} epochs · "
               f"{seeds} seed(s) · {images:,} training images")
    if frame.empty:
        st.info("None of these runs is stored yet. Train them below, or pick the reference grid "
                "with 60 epochs and 60,000 images to see the committed results.")
    else:
        _chart(frame, kind)
    if valid:
        _training_controls(kind, missing, fp)
    _job_panel(kind)
    if not frame.empty:
        table = st.expander("Table of runs", key=f"{kind}_table", on_change="rerun")
        if table.open:  # drawn only when opened: the page's first render skips the table's script
            with table:
                st.dataframe(_readable(frame), hide_index=True)


READABLE_COLUMNS = {"hidden": "hidden widths", "l2": "λ", "seed": "seed", "epochs": "epochs",
                    "limit": "training images", "train_error": "train error", "test_error": "test error",
                    "test_accuracy": "test accuracy", "train_loss": "train loss", "test_loss": "test loss",
                    "param_count": "parameters", "wall_time_s": "training time (s)", "trainer": "trainer",
                    "key": "run key"}


def _readable(frame):
    """The runs table as a person reads it: named columns, all training images as 60,000."""
    shown = frame[list(READABLE_COLUMNS)].assign(limit=frame["limit"].fillna(60000).astype(int),
                                                 key=frame["key"].str[:12])
    return shown.rename(columns=READABLE_COLUMNS)


def _chart(frame, kind: str) -> None:
    if kind == "lambda":
        option = charts.sweep_chart(frame, "l2", "l2", "L2 lambda (one step per grid value)")
    else:
        option = charts.sweep_chart(frame, "hidden", "neurons", "hidden layer widths (layer 1/layer 2)")
    # A chart of other runs is a new chart: its selection (marker positions) must not carry over.
    runs = hashlib.sha256(" ".join(frame["key"]).encode()).hexdigest()[:12]
    event = st.echarts_chart(option, height=charts.SWEEP_HEIGHT, on_select="rerun",
                             key=f"{kind}_chart_{runs}", renderer="svg")
    key = charts.clicked_run(event.selection if event else None, frame)
    if key:
        common.select(key)
    chosen = common.selected_run()
    if chosen is not None:
        st.success(f"Selected: {chosen.config.label}, test accuracy {chosen.test_accuracy:.2%}. "
                   "The Errors and Draw pages now use it.")
    else:
        st.caption("Click a point to select its run for the Errors and Draw pages.")
    best, accuracies = best_point(frame, "l2" if kind == "lambda" else "hidden")
    st.caption(f"Best mean test accuracy: {accuracies.mean():.2%} at "
               f"{f'λ = {best:g}' if kind == 'lambda' else best}")


def _training_controls(kind: str, missing, fp: str) -> None:
    if not missing:
        return
    message = common.need_mnist_message()
    if message:
        st.warning(message)
        common.get_mnist_button(key=f"{kind}_get_mnist")
        return
    place = common.training_place()
    if place["error"]:
        st.error(f"Training is off: {place['error']}. Bring the cluster back, or unset "
                 "MNIST_LAB_RAY_ADDRESS and restart the dashboard to train on this machine.")
        return
    if place["ray"]:
        st.caption(f"Training jobs run on the {place['where']}.")
    total_epochs = sum(c.epochs for c in missing)
    label = f"Train {len(missing)} missing run(s) in the background ({total_epochs} model-epochs)"
    if st.button(label, key=f"{kind}_train", type="primary"):
        try:
            job = jobs.start(missing, common.stores(), fp, title=f"{kind} sweep: {len(missing)} runs",
                             data_path=common.mnist_source(), cpus=place["cpus"])
            st.toast(f"Training job {job.id[:8]} {job.status}")
        except (jobs.JobError, StoreError, OSError) as exc:
            st.error(str(exc))


@st.fragment(run_every=2)
def _job_panel(kind: str) -> None:
    listed = jobs.list_jobs(common.stores())
    active = [j for j in listed if j.status in jobs.ACTIVE]
    recent = [j for j in listed[:3] if j.status == "failed"]
    for job in active:
        title = job.state.get("title", "job")
        progress, cancel = st.columns([6, 1], vertical_alignment="bottom")
        if job.status == "stalled":
            progress.warning(f"{title} is stalled: {job.message}")
        else:
            progress.progress(job.progress, text=f"{title}: {job.message}")
        cancel.button("Cancel", key=f"cancel_{job.id}", on_click=jobs.cancel, args=(job,),
                      help="End the training process; runs already finished stay stored")
    for job in recent:
        st.error(f"{job.state.get('title', 'job')} failed: {job.message}")
    signature = common.store_signature()
    if st.session_state.get(f"{kind}_signature") not in (None, signature):
        st.session_state[f"{kind}_signature"] = signature
        st.rerun(scope="app")  # new runs were published: redraw the curves
    st.session_state[f"{kind}_signature"] = signature
