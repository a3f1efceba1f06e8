"""The lambda and width sweep pages and the lambda x width grid: their controls, curves over seeds
or heat map, background training."""

from __future__ import annotations

import hashlib
import time

import streamlit as st

from mnist_core import jobs
from mnist_core.catalog import (
    GRID_LAMBDAS,
    GRID_WIDTHS,
    REFERENCE_LAMBDAS,
    REFERENCE_WIDTHS,
    best_point,
    grid_configs,
    lambda_configs,
    parse_lambdas,
    parse_width_pairs,
    runs_table,
    width_configs,
)
from mnist_core.configs import MAX_L2, ConfigError, RunConfig
from mnist_core.store import StoreError
from pages.parts import charts, common, url_state

EPOCH_CHOICES = (1, 2, 5, 10, 20, 30, 60)
IMAGE_CHOICES = (1000, 2000, 5000, 10000, 30000, 60000)
LAMBDA_MODES = {"reference": "Reference grid", "log": "Log range", "values": "Explicit values"}
WIDTH_MODES = {"reference": "Reference grid", "range": "Range of the reference", "pairs": "Explicit pairs"}
WIDTH_LABELS = [f"{a}/{b}" for a, b in REFERENCE_WIDTHS]
LOG_STEPS = [x / 2 for x in range(-10, 1)]  # log10 lambda from -5 to 0 in steps of 0.5


def _log_step(text: str) -> float:
    value = float(text)
    if value not in LOG_STEPS:
        raise ValueError(text)
    return value


def settings(kind: str) -> list[url_state.Setting]:
    """The sidebar of a sweep page, as URL parameters."""
    Setting = url_state.Setting
    shared = [Setting("epochs", f"{kind}_epochs", 60, url_state.one_of(EPOCH_CHOICES)),
              Setting("seeds", f"{kind}_seeds", 1 if kind == "grid" else 3, url_state.one_of((1, 2, 3))),
              Setting("images", f"{kind}_images", 60000, url_state.one_of(IMAGE_CHOICES))]
    if kind == "lambda":
        return [Setting("grid", "lambda_grid_mode", "Reference grid", *url_state.named(LAMBDA_MODES)),
                Setting("range", "lambda_range", (-3.0, -0.5), *url_state.pair_of(_log_step)),
                Setting("points", "lambda_count", 6, url_state.one_of(range(2, 13))),
                Setting("zero", "lambda_zero", True, url_state.yes_no),
                Setting("values", "lambda_values", "0, 0.001, 0.01, 0.1", url_state.text_up_to(500)),
                *shared]
    if kind == "grid":
        return [Setting("values", "grid_values", ", ".join(f"{v:g}" for v in GRID_LAMBDAS),
                        url_state.text_up_to(500)),
                Setting("pairs", "grid_pairs", ", ".join(f"{a}:{b}" for a, b in GRID_WIDTHS),
                        url_state.text_up_to(500)),
                *shared]
    return [Setting("grid", "width_grid_mode", "Reference grid", *url_state.named(WIDTH_MODES)),
            Setting("range", "width_range", (WIDTH_LABELS[0], WIDTH_LABELS[-1]),
                    *url_state.pair_of(url_state.one_of(WIDTH_LABELS), WIDTH_LABELS.index)),
            Setting("pairs", "width_values", "10:5, 25:10, 100:40", url_state.text_up_to(500)),
            *shared]


def log_range(low: float, high: float, count: int, zero: bool) -> list[float]:
    values = [round(10 ** (low + (high - low) * i / (count - 1)), 6) for i in range(count)]
    return sorted(set(values + ([0.0] if zero else [])))


def _lambda_grid() -> list[float] | None:
    mode = st.radio("Lambda grid", list(LAMBDA_MODES.values()), horizontal=True, key="lambda_grid_mode")
    if mode == "Reference grid":
        return list(REFERENCE_LAMBDAS)
    if mode == "Log range":
        # value= only makes it a range slider; the value itself comes from the session (url_state)
        low, high = st.select_slider("log₁₀ λ range", LOG_STEPS, value=(-3.0, -0.5), key="lambda_range")
        count = st.slider("Points in range", 2, 12, key="lambda_count")
        zero = st.checkbox("Include λ = 0", key="lambda_zero")
        values = log_range(low, high, count, zero)
        st.caption("λ = " + ", ".join(f"{v:g}" for v in values))
        return values
    text = st.text_input("Lambdas, comma-separated", key="lambda_values",
                         help=f"Numbers from 0 to {MAX_L2:g} separated by commas, like 0, 0.001, 0.01 "
                              "(1e-3 works too); each is the L2 penalty's weight λ for one point")
    return _parsed(parse_lambdas, text, "lambda")


def _width_grid() -> list[tuple[int, int]] | None:
    mode = st.radio("Width grid", list(WIDTH_MODES.values()), horizontal=True, key="width_grid_mode")
    if mode == "Reference grid":
        return list(REFERENCE_WIDTHS)
    if mode == "Range of the reference":
        low, high = st.select_slider("Layer sizes from … to", WIDTH_LABELS,
                                     value=(WIDTH_LABELS[0], WIDTH_LABELS[-1]), key="width_range")
        return list(REFERENCE_WIDTHS[WIDTH_LABELS.index(low):WIDTH_LABELS.index(high) + 1])
    text = st.text_input("Pairs layer1:layer2, comma-separated", key="width_values",
                         help="Width pairs like 25:10, separated by commas")
    return _parsed(parse_width_pairs, text, "width")


def _lambda_width_grid() -> tuple[list[float], list[tuple[int, int]]] | None:
    values = st.text_input("Lambdas, comma-separated", key="grid_values",
                           help=f"Numbers from 0 to {MAX_L2:g} separated by commas: one row each")
    pairs = st.text_input("Pairs layer1:layer2, comma-separated", key="grid_pairs",
                          help="Width pairs like 25:15, separated by commas: one column each")
    values = _parsed(parse_lambdas, values, "grid")
    pairs = _parsed(parse_width_pairs, pairs, "grid") if values is not None else None
    return None if pairs is None else (values, pairs)


DEFAULT_GRIDS = {"lambda": list(REFERENCE_LAMBDAS), "width": list(REFERENCE_WIDTHS),
                 "grid": (list(GRID_LAMBDAS), list(GRID_WIDTHS))}
GRID_NAMES = {"lambda": "Lambdas", "width": "Widths", "grid": "Grid"}


def _configs(kind: str, grid, seeds: int, epochs: int, limit: int | None):
    if kind == "lambda":
        return lambda_configs(grid, range(seeds), epochs, limit)
    if kind == "width":
        return width_configs(grid, range(seeds), epochs, limit)
    return grid_configs(*grid, range(seeds), epochs, limit)


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
    """The whole page for kind 'lambda', 'width' or 'grid'."""
    page_settings = settings(kind)
    url_state.restore(page_settings)
    with st.sidebar:
        st.subheader("Grid")
        grid = {"lambda": _lambda_grid, "width": _width_grid, "grid": _lambda_width_grid}[kind]()
        epochs = st.select_slider("Epochs", EPOCH_CHOICES, key=f"{kind}_epochs")
        seeds = st.slider("Seeds", 1, 3, key=f"{kind}_seeds")
        images = st.select_slider("Training images", IMAGE_CHOICES, key=f"{kind}_images",
                                  format_func=lambda n: f"{n:,}")
    url_state.keep(page_settings)
    valid = grid is not None
    if not valid:
        grid = st.session_state.get(f"{kind}_last_grid") or DEFAULT_GRIDS[kind]
        st.error(f"{GRID_NAMES[kind]}: {st.session_state.get(f'{kind}_grid_problem')}. "
                 "Showing the last grid that was valid until the input is fixed.")
    else:
        st.session_state[f"{kind}_last_grid"] = grid
    limit = None if images == 60000 else images
    try:
        configs = _configs(kind, grid, seeds, epochs, limit)
    except ConfigError as exc:
        st.error(str(exc))
        return
    fp = common.fingerprint()
    runs = [common.run_by_key(c.key(fp)) for c in configs]
    missing = [c for c, r in zip(configs, runs) if r is None]
    frame = runs_table(runs)
    st.caption(f"{len(configs) - len(missing)} of {plural(len(configs), 'run')} stored · "
               f"{plural(epochs, 'epoch')} · {plural(seeds, 'seed')} · {images:,} training images")
    if frame.empty:
        first = "Get MNIST below to train them" if common.need_mnist_message() else "Train them below"
        grid_name = "default" if kind == "grid" else "reference"
        st.info(f"None of these runs is stored yet. {first}, or pick the {grid_name} grid with 60 epochs "
                "and 60,000 images to see the committed results.")
    else:
        _chart(frame, kind)
    if valid:
        _training_controls(kind, missing, fp)
    _job_panel(kind, frozenset(c.key(fp) for c in configs))
    if not frame.empty:
        table = st.expander("Table of runs", key=f"{kind}_table", on_change="rerun")
        if table.open:  # drawn only when opened: the page's first render skips the table's script
            with table:
                _table(frame)


READABLE_COLUMNS = {"hidden": "hidden widths", "l2": "λ", "seed": "seed", "epochs": "epochs",
                    "limit": "training images", "train_error": "train error", "test_error": "test error",
                    "test_accuracy": "test accuracy", "param_count": "parameters",
                    "wall_time_s": "training time (s)", "key": "run key"}
NUMBER_FORMATS = {"training images": "localized", "train error": "%.4f", "test error": "%.4f",
                  "test accuracy": "percent", "parameters": "localized", "training time (s)": "%.0f"}


def _readable(frame):
    """The runs table as a person reads it: named columns, all training images as 60,000."""
    shown = frame[list(READABLE_COLUMNS)].assign(limit=frame["limit"].fillna(60000).astype(int),
                                                 key=frame["key"].str[:12])
    return shown.rename(columns=READABLE_COLUMNS)


def _table(frame) -> None:
    st.dataframe(_readable(frame), hide_index=True,
                 column_config={name: st.column_config.NumberColumn(format=form)
                                for name, form in NUMBER_FORMATS.items()})


def _chart(frame, kind: str) -> None:
    # A chart of other runs is a new chart: its selection (marker positions) must not carry over.
    runs = hashlib.sha256(" ".join(frame["key"]).encode()).hexdigest()[:12]
    chart_key = f"{kind}_chart_{runs}"
    clicked = st.session_state.get(chart_key)  # a click is known before the chart is drawn again
    selection = clicked.get("selection") if clicked else None
    if kind == "grid":
        cells = charts.grid_cells(frame)
        key = charts.clicked_cell_run(selection, cells)
    else:
        key = charts.clicked_run(selection, frame)
    if key:
        common.select(key)
    chosen = common.selected_run()
    selected = chosen.key if chosen is not None else None
    point = "cell" if kind == "grid" else "point"
    if kind == "grid":
        option, height = charts.grid_chart(cells, selected), charts.GRID_HEIGHT
    elif kind == "lambda":
        option = charts.sweep_chart(frame, "l2", "l2", "L2 lambda (one step per grid value)", selected)
        height = charts.SWEEP_HEIGHT
    else:
        option = charts.sweep_chart(frame, "hidden", "neurons", "hidden layer widths (layer 1/layer 2)",
                                    selected)
        height = charts.SWEEP_HEIGHT
    st.echarts_chart(option, height=height, on_select="rerun", key=chart_key, renderer="svg")
    if chosen is not None and chosen.key in set(frame["key"]):
        st.success(f"Selected: {chosen.config.label}, test accuracy {chosen.test_accuracy:.2%}. "
                   "The Errors and Draw pages now use it.")
    elif chosen is not None:
        st.info(f"Selected: {chosen.config.label}, test accuracy {chosen.test_accuracy:.2%}. It is not on "
                f"this chart (chosen with other settings or on another page); click a {point} to select "
                "one of these runs instead.")
    else:
        st.caption(f"Click a {point} to select its run for the Errors and Draw pages.")
    if kind == "grid":
        _best_lambda_per_width(cells)
        return
    best, accuracies = best_point(frame, "l2" if kind == "lambda" else "hidden")
    st.caption(f"Best mean test accuracy: {accuracies.mean():.2%} at "
               f"{f'λ = {best:g}' if kind == 'lambda' else best}")


def _best_lambda_per_width(cells) -> None:
    """The grid's answer in a line: the best λ in each column, and whether they agree."""
    best = cells.loc[cells.groupby("hidden", sort=False)["test_error"].idxmin()]
    words = "; ".join(f"{row.hidden}: λ = {row.l2:g} ({row.test_error:.2%})" for row in best.itertuples())
    same = best["l2"].nunique() == 1
    st.caption(f"Lowest test error per width: {words}. "
               + ("The same λ at every width." if same else "The best λ changes with the width."))


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def describe(kind: str, configs) -> str:
    """What a job trains, as a person reads it: "λ = 0.002, 5 epochs, seed 0, 2,000 images"."""
    lambdas = [f"{v:g}" for v in sorted({c.l2 for c in configs})]
    widths = [f"{a}/{b}" for a, b in sorted({c.hidden for c in configs})]

    def listed(values: list[str]) -> str:
        return ", ".join(values[:4]) + (f" and {len(values) - 4} more" if len(values) > 4 else "")
    head = {"lambda": f"λ = {listed(lambdas)}", "width": f"widths {listed(widths)}",
            "grid": f"λ = {listed(lambdas)} × widths {listed(widths)}"}[kind]
    seeds = sorted({c.seed for c in configs})
    epochs = max(c.epochs for c in configs)
    images = configs[0].limit or 60000
    return (f"{head}, {plural(epochs, 'epoch')}, {'seed' if len(seeds) == 1 else 'seeds'} "
            f"{', '.join(map(str, seeds))}, {images:,} images")


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
        reason = place["error"].split("; ")[0]  # what follows is advice for the command line
        st.error(f"Training is off: {reason}. Ask whoever runs this dashboard to bring the Ray "
                 "cluster back; the stored runs are all here meanwhile.")
        return
    try:
        jobs.check_limits(missing, place["cpus"])  # the rule the job runner applies, before the button
    except jobs.JobError as exc:
        st.warning(f"These {plural(len(missing), 'missing run')} cannot be trained from here: {exc}. "
                   "Ask for less: fewer grid values or seeds, fewer epochs, or narrower layers; "
                   "the command line (`python -m mnist_core sweep`) has no such limit.")
        return
    if place["ray"]:
        st.caption(f"Training jobs run on the {place['where']}.")
    total_epochs = sum(c.epochs for c in missing)
    label = (f"Train {plural(len(missing), 'missing run')} in the background "
             f"({plural(total_epochs, 'model-epoch')})")
    if st.button(label, key=f"{kind}_train", type="primary"):
        title = describe(kind, missing)
        try:
            job = jobs.start(missing, common.stores(), fp, title=title, data_path=common.mnist_source(),
                             cpus=place["cpus"], settings=st.query_params.to_dict())
            st.session_state.setdefault(JOBS_SEEN, set()).add(job.id)
            st.toast(f"Training started: {title}")
        except (jobs.JobError, StoreError, OSError) as exc:
            st.error(str(exc))


def _show_job_runs(kind: str, job_settings: dict) -> None:
    """The Show button of a finished job: the page's settings become the job's."""
    for setting in settings(kind):
        st.session_state.pop(setting.key, None)
    st.query_params.from_dict(job_settings)


RECENT_S = 600  # a finished job's closing line stays this long
JOBS_SEEN = "jobs_seen"  # ids of the jobs this visitor started or saw running: only theirs get a closing line


@st.fragment(run_every=2)
def _job_panel(kind: str, on_chart: frozenset) -> None:
    listed = jobs.list_jobs(common.stores())
    active = [j for j in listed if j.status in jobs.ACTIVE]
    seen = st.session_state.setdefault(JOBS_SEEN, set())
    seen.update(job.id for job in active)
    for job in active:
        title = job.state.get("title", "training")
        progress, cancel = st.columns([6, 1], vertical_alignment="bottom")
        if job.status == "stalled":
            progress.warning(f"Training {title} is stalled: {job.message}")
        else:
            elapsed = time.time() - float(job.state.get("launched") or time.time())
            progress.progress(job.progress, text=f"Training {title}: {job.message} ({elapsed:.0f} s)")
        cancel.button("Cancel", key=f"cancel_{job.id}", on_click=jobs.cancel, args=(job,),
                      help="End the training process; runs already finished stay stored")
        _live_curves(job)
    for job in listed[:3]:
        if job.status == "failed":
            st.error(f"Training {job.state.get('title', '')} failed: {job.message}")
    ended = [j for j in listed if j.status in ("done", "cancelled")]
    if ended and not active and ended[0] is listed[0] and ended[0].id in seen:
        _closing_line(kind, ended[0], on_chart)
    signature = common.store_signature()
    if st.session_state.get(f"{kind}_signature") not in (None, signature):
        st.session_state[f"{kind}_signature"] = signature
        st.rerun(scope="app")  # new runs were published: redraw the curves
    st.session_state[f"{kind}_signature"] = signature


def _live_curves(job: jobs.Job) -> None:
    """Each run the job trains, its loss and accuracy so far: drawn anew as each epoch ends."""
    curves = job.curves
    if not curves:
        return
    labels = {}
    for key, config in zip(job.keys, job.state.get("configs", [])):
        try:
            labels[key] = RunConfig.from_dict(config).label
        except (ConfigError, TypeError, AttributeError):
            labels[key] = key[:8]
    histories = {labels.get(key, key[:8]): curves[key] for key in job.keys if key in curves}
    epochs = int(min(jobs.MAX_JOB_EPOCHS, max(1, float(job.state.get("epochs_total") or 1))))
    ended = max(len(values) for curve in histories.values() for values in curve.values())
    left, right = st.columns(2)
    for column, metric in ((left, "loss"), (right, "accuracy")):
        title = f"{metric.capitalize()} as it trains: {ended} of {epochs} epochs (dashed: validation)"
        column.echarts_chart(charts.compared_history_chart(histories, metric, epochs, title),
                             key=f"live_{job.id}_{metric}", height=260 + 20 * len(histories), renderer="svg")


def _closing_line(kind: str, job: jobs.Job, on_chart: frozenset) -> None:
    """How the last job ended, while it is recent: what it stored, and where to see it."""
    ended_at = float(job.state.get("updated") or 0)
    if time.time() - ended_at > RECENT_S:
        return
    title = job.state.get("title", "training")
    stored = sum(key in common.all_runs() for key in job.keys)
    seconds = max(0.0, ended_at - float(job.state.get("launched") or ended_at))
    if job.status == "cancelled":
        text = f"Cancelled: {stored} of {plural(len(job.keys), 'run')} were stored ({title})."
    else:
        text = f"Trained {plural(len(job.keys), 'run')} in {seconds:.0f} s ({title})"
    shown = set(job.keys) <= on_chart
    line, button = st.columns([6, 1], vertical_alignment="center")
    (line.success if job.status == "done" else line.info)(
        text + ("; they are on the chart." if shown and job.status == "done" else
                "" if shown or not stored else "; the page shows other settings now."))
    if not shown and stored and isinstance(job.state.get("settings"), dict):
        if button.button("Show them", key=f"show_{job.id}", help="Set this page to the job's settings"):
            _show_job_runs(kind, job.state["settings"])
            st.rerun(scope="app")  # the panel is a fragment: the sidebar and chart must redraw too
