"""Errors: confusion matrix, a browsable grid of misclassified test images, two runs compared,
and the test labels most likely wrong."""

from pages.parts.routing import route

route()  # before the imports below: see routing.route

import streamlit as st

from mnist_core.mistakes import LOSS_BEYOND, compare, confusion, sort_errors
from pages.parts import charts, common, suspects_view, url_state

common.page_setup()

PAGE_SIZE = 50


def grid(rows, images: dict, key: str, other=None, by: str = "confidence") -> None:
    """Misclassified images, PAGE_SIZE at a time, captioned true → predicted (confidence, or the
    loss when sorted by it); with `other` (run B's error table), B's prediction beside A's."""
    if len(rows) == 0:
        st.info("No misclassified images here.")
        return
    pages = (len(rows) - 1) // PAGE_SIZE + 1
    with st.columns([1, 3])[0]:  # a box for a page number, not a bar across the page
        page = st.number_input(f"Page (of {pages}, {PAGE_SIZE} per page)", 1, pages, 1, key=f"{key}_page")
    shown = rows.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    st.html(charts.mistake_grid(shown, images, other, by))


st.title("Misclassified test images")
if not common.all_runs():
    st.info("No runs are stored yet: run `python -m mnist_core reproduce`.")
    st.stop()
named = common.named_runs()
default = common.selected_run() or named.get("improved_cnn") or named.get("baseline_mlp")
# The open tab is in the URL (?tab=…): a reload or a copied link opens the same tab.
Setting = url_state.Setting
TABS = ["Browse", "Compare two runs", "Suspect labels"]
tab_setting = [Setting("tab", "tab", TABS[0], url_state.one_of(TABS))]
url_state.restore(tab_setting)
if st.session_state["tab"] == "Suspect labels":  # the voters are its runs: no run box that does nothing
    run = default
    table, images = common.read_or_stop(common.errors_of, run.key)
else:
    run = common.selected_run_box("Run", "errors_run", default)
    table, images = common.read_or_stop(common.errors_of, run.key)
    st.caption(f"{len(table)} of 10,000 test images wrong ({len(table) / 100:.2f}% error).")
tab_browse, tab_compare, tab_suspects = st.tabs(TABS, key="tab", on_change="rerun")
url_state.keep(tab_setting)
# The filter and the order are in the URL too: a copied link shows the same mistakes.
digits = url_state.one_of(["any"] + [str(d) for d in range(10)])
browse_settings = [Setting("true", "errors_true", "any", digits),
                   Setting("predicted", "errors_pred", "any", digits),
                   Setting("sort", "errors_sort", "confidence", url_state.one_of(["confidence", "loss"]))]
url_state.restore(browse_settings)
with tab_browse:
    left, right = st.columns([2, 3])
    matrix = confusion(table)
    with left:
        # Each click is read before the chart is drawn, then the chart is drawn afresh (a new
        # key) with no selection of its own: every click acts, the same cell again too, and the
        # outline is the filter's, not a stale selection's.
        generation = st.session_state.setdefault("errors_chart_generation", 0)
        clicked = st.session_state.get(f"confusion_{run.key}_{generation}")
        cell = charts.clicked_cell(clicked.get("selection") if clicked else None)
        if cell:
            st.session_state["errors_chart_generation"] = generation = generation + 1
            if cell[0] == cell[1]:
                st.session_state["errors_true"] = st.session_state["errors_pred"] = "any"
                st.info(f"Diagonal cells are correct readings: {matrix[int(cell[0]), int(cell[0])]:,} test "
                        f"images of digit {cell[0]} were read as {cell[0]}. Only mistakes are listed here; "
                        "click a coloured cell to see those.")
            else:
                st.session_state["errors_true"], st.session_state["errors_pred"] = cell
        filtered = (st.session_state.get("errors_true", "any"), st.session_state.get("errors_pred", "any"))
        outlined = tuple(map(int, filtered)) if "any" not in filtered else None
        st.echarts_chart(charts.confusion_chart(matrix, outlined), height=charts.CONFUSION_HEIGHT,
                         on_select="rerun", key=f"confusion_{run.key}_{generation}", renderer="svg")
        st.caption("Click a cell to show only those mistakes.")

    def clear_filter() -> None:
        st.session_state["errors_true"] = st.session_state["errors_pred"] = "any"
    with right:
        options = ["any"] + [str(d) for d in range(10)]
        a, b, c = st.columns(3)
        true_label = a.selectbox("True digit", options, key="errors_true")
        predicted_label = b.selectbox("Predicted digit", options, key="errors_pred")
        order = c.radio("Sort by", ["confidence", "loss"], horizontal=True, key="errors_sort")
    rows = table
    if true_label != "any":
        rows = rows[rows["true"] == int(true_label)]
    if predicted_label != "any":
        rows = rows[rows["predicted"] == int(predicted_label)]
    if (true_label, predicted_label) != ("any", "any"):
        shown, clear = right.columns([4, 1], vertical_alignment="center")
        shown.info(f"Showing {len(rows)} mistake{'' if len(rows) == 1 else 's'}: true {true_label}, "
                   f"predicted {predicted_label}.")
        clear.button("Clear filter", key="errors_clear_filter", on_click=clear_filter)
    if order == "confidence":
        st.caption("Each image: its true digit → the digit the run read, how sure the run was of that "
                   "wrong reading (the surest first), and the image's number in the test set.")
    if order == "loss":
        st.caption("Each image: its true digit → the digit the run read, then the loss. "
                   f"Loss: −log of the probability the run gave the true digit; the highest first. "
                   f"“> {LOSS_BEYOND:.1f}”: a probability below 3e-8, stored as 0 (runs keep "
                   f"probabilities as 16-bit floats), so these come first, the surest mistakes first.")
    grid(sort_errors(rows, order), images, "browse", by=order)
url_state.keep(browse_settings)

if tab_compare.open:  # computed only when open, like the suspects below
    with tab_compare:
        compare_settings = [common.run_setting("b", "errors_other", named.get("reference_cnn")),
                            Setting("group", "errors_compare_group", "only A",
                                    url_state.one_of(["only A", "only B", "both"]))]
        url_state.restore(compare_settings)
        run_b = common.run_selectbox("Run B", "errors_other", named.get("reference_cnn"))
        table_b, images_b = common.read_or_stop(common.errors_of, run_b.key)
        groups = compare(table, table_b)
        st.markdown(f"A = {run.config.label}  \nB = {run_b.config.label}")
        if run_b.key == run.key:
            st.info("Run B is run A: every mistake is in both. Choose another run B to compare.")
        counts = st.columns(3)
        for column, (name, indices) in zip(counts, groups.items()):
            column.metric(name, len(indices))
        which = st.radio("Show", list(groups), horizontal=True, key="errors_compare_group")
        url_state.keep(compare_settings)
        source, source_images = (table_b, images_b) if which == "only B" else (table, images)
        chosen = source[source["index"].isin(groups[which])]
        if which == "both":
            st.caption("Each image: its true digit, then what A and B read and how sure each was.")
        grid(sort_errors(chosen, "confidence"), source_images, f"compare_{which}",
             other=table_b.set_index("index") if which == "both" else None)

if tab_suspects.open:  # ranked only when asked for: the other tabs stay as quick as before
    with tab_suspects:
        suspects_view.render()
