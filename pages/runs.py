"""Runs: every stored run as a row to sort, filter and tick; the ticked runs compared, and all of
them across their hyperparameters."""

from pages.parts.routing import route

route()  # before the imports below: see routing.route

import hashlib

import pandas as pd
import streamlit as st

from mnist_core.comparing import MAX_COMPARED, config_differences, per_digit_accuracy, runs_frame
from pages.parts import charts, common, url_state

common.page_setup()

SORTS = {"test accuracy": "test_accuracy", "test loss": "test_loss", "λ": "l2", "hidden widths": "hidden1",
         "epochs": "epochs", "seed": "seed", "training images": "limit", "training time": "wall_time_s",
         "model": "model"}
ORDERS = ["highest first", "lowest first"]
AT_LEAST = (0.0, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)
COLUMNS = {"compare": "compare", "label": "run", "test_accuracy": "test accuracy", "test_loss": "test loss",
           "model": "model", "hidden": "hidden widths", "l2": "λ", "epochs": "epochs", "seed": "seed",
           "limit": "training images", "precision": "precision", "wall_time_s": "training time (s)",
           "store": "store", "key": "run key"}

st.title("Every stored run")
runs = common.all_runs()
if not runs:
    st.info("No runs are stored yet: run `python -m mnist_core reproduce`.")
    st.stop()
frame = runs_frame(runs.values(), common.stores().writable.root)
kinds = sorted(frame["model"].unique())
Setting = url_state.Setting
settings = [Setting("kinds", "runs_kinds", kinds, *url_state.list_of(kinds)),
            Setting("find", "runs_find", "", url_state.text_up_to(100)),
            Setting("least", "runs_least", 0.0, url_state.one_of(AT_LEAST)),
            Setting("sort", "runs_sort", "test accuracy", url_state.one_of(list(SORTS))),
            Setting("order", "runs_order", ORDERS[0], url_state.one_of(ORDERS)),
            Setting("compare", "runs_compare", [], *url_state.runs_named(sorted(runs)))]
url_state.restore(settings)

kind_column, find_column, least_column = st.columns([2, 2, 2])
chosen_kinds = kind_column.multiselect("Kinds", kinds, key="runs_kinds")
find = find_column.text_input("Find", key="runs_find", placeholder="MLP 25-15, λ=0.01, seed 2, a key…")
least = least_column.select_slider("Test accuracy at least", AT_LEAST, key="runs_least",
                                   format_func=lambda v: f"{v:.1%}" if v else "any")
sort_column, order_column, _ = st.columns([2, 2, 2])
sort = sort_column.selectbox("Sort by", list(SORTS), key="runs_sort")
order = order_column.radio("Order", ORDERS, key="runs_order", horizontal=True)

shown = frame[frame["model"].isin(chosen_kinds) & (frame["test_accuracy"] >= least)]
if find.strip():
    words = find.strip().lower()
    found = shown["label"].str.lower().str.contains(words, regex=False) | shown["key"].str.startswith(words)
    shown = shown[found]
shown = shown.sort_values([SORTS[sort], "key"], ascending=[order == "lowest first", True], kind="stable")
compare = list(st.session_state["runs_compare"])
st.caption(f"Showing {len(shown)} of {len(frame)} runs · {len(compare)} of at most {MAX_COMPARED} ticked "
           "to compare (tick a row with the mouse, or move to its box with the arrow keys and press space; "
           "the last ticked becomes the selected run on every page).")

table = shown.assign(compare=shown["key"].isin(compare), key=shown["key"].str[:12])[list(COLUMNS)]
# The editor's ticks are kept by row position: a new set of rows or ticks is a new editor.
version = hashlib.sha256(repr((list(shown["key"]), compare)).encode()).hexdigest()[:12]
edited = st.data_editor(
    table.rename(columns=COLUMNS), hide_index=True, key=f"runs_table_{version}", width="stretch",
    disabled=[name for name in COLUMNS.values() if name != "compare"],
    column_config={"compare": st.column_config.CheckboxColumn("compare", help="Tick to compare"),
                   "test accuracy": st.column_config.NumberColumn(format="percent"),
                   "test loss": st.column_config.NumberColumn(format="%.4f"),
                   "training images": st.column_config.NumberColumn(format="localized"),
                   "training time (s)": st.column_config.NumberColumn(format="%.0f")})
ticked = [key for key, tick in zip(shown["key"], edited["compare"]) if tick]
hidden = set(frame["key"]) - set(shown["key"])  # ticked, then filtered out: still compared
wanted = [k for k in compare if k in ticked or k in hidden] + [k for k in ticked if k not in compare]
if len(wanted) > MAX_COMPARED:
    st.warning(f"At most {MAX_COMPARED} runs are compared at once: untick one to add another.")
    wanted = wanted[:MAX_COMPARED]
url_state.keep(settings)
if wanted != compare:
    st.session_state["runs_compare"] = wanted
    added = [k for k in wanted if k not in compare]
    if added:
        common.select(added[-1])
    st.rerun()

default = common.selected_run()
common.selected_run_box("Selected run (the one every page shows)", "runs_selected", default)


def compared_view(compared: list) -> None:
    """The ticked runs side by side: curves, accuracy per digit, what differs in their configs."""
    st.subheader(f"{len(compared)} run{'s' if len(compared) > 1 else ''} compared")
    labels = [f"{r.config.label} · {r.key[:6]}" for r in compared]
    histories = {label: common.read_or_stop(common.history_of, r.key).to_dict("list")
                 for label, r in zip(labels, compared)}
    left, right = st.columns(2)
    for column, metric in ((left, "loss"), (right, "accuracy")):
        column.echarts_chart(charts.compared_history_chart(histories, metric),
                             height=260 + 40 * len(compared), renderer="svg")
    accuracies = {}
    for label, run in zip(labels, compared):
        try:
            accuracies[label] = per_digit_accuracy(run)
        except ValueError as exc:
            st.caption(f"{label}: no accuracy per digit ({exc})")
    if accuracies:
        st.echarts_chart(charts.per_digit_chart(accuracies), height=260 + 20 * len(accuracies),
                         renderer="svg")
    if len(compared) < 2:
        st.caption("Tick another run to see what differs between them.")
        return
    differences = config_differences([r.config for r in compared])
    rows = {"run": labels, **{name: [str(v) for v in values] for name, values in differences.items()},
            "test accuracy": [f"{r.test_accuracy:.2%}" for r in compared]}
    st.markdown("**What differs in their configs**" if differences else "**Their configs are the same** "
                "(other data or a store apart)")
    st.table(pd.DataFrame(rows).set_index("run"))


if compare:
    compared_view([runs[k] for k in compare])

st.subheader("The shown runs across their hyperparameters")
st.echarts_chart(charts.parallel_chart(shown), height=380, renderer="svg")
st.caption("One line per run, coloured by test accuracy (green highest); a CNN's hidden widths are 0. "
           "Training images are on a log scale.")
