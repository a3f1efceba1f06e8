"""The Errors page's Suspect labels tab: ranking, filters, a verdict per image, export, and
accuracy with the images marked "label wrong" set aside."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mnist_core.data import MNISTError, load_mnist, mnist_available
from mnist_core.suspects import (
    VERDICTS,
    Verdicts,
    accuracy_without,
    default_voters,
    given_labels,
    predicted_labels,
    rank_suspects,
    verdicts_csv,
)
from pages.parts import charts, common, url_state

PAGE_SIZE = 12
ACCURATE = 0.98  # a quick choice of voters: the runs at least this accurate on the test set
COLUMNS = 4


@st.cache_resource(show_spinner="Ranking the 10,000 test labels…", max_entries=8)
def _ranking(keys: tuple[str, ...], names: tuple[str, ...]) -> pd.DataFrame:
    return rank_suspects({name: common.run_by_key(key) for name, key in zip(names, keys)})


@st.cache_resource(show_spinner=False, max_entries=4)
def _test_images(signature: tuple) -> dict:
    """Test images by index: all of MNIST's when it is here, else every stored run's mistakes."""
    if mnist_available():
        try:
            return dict(enumerate(load_mnist().x_test))
        except MNISTError:
            pass
    images = {}
    for key in common.all_runs():
        try:
            images.update(common.errors_of(key)[1])
        except (OSError, ValueError):
            continue
    return images


@st.cache_resource(show_spinner=False, max_entries=16)
def _labels(key: str, given: bool = True):
    """A run's given test labels (or, with given=False, its predicted ones), read once per process."""
    run = common.run_by_key(key)
    return given_labels(run) if given else predicted_labels(run)


def _verdicts() -> Verdicts:
    return Verdicts(common.stores().writable.root)


def _save(index: int) -> None:
    try:
        _verdicts().set(index, st.session_state.get(f"verdict_{index}"))
    except (OSError, ValueError) as exc:
        st.session_state["suspects_problem"] = f"The verdict on image {index} could not be saved: {exc}"


def _set_voters(keys: list[str]) -> None:
    st.session_state["suspects_voters"] = list(keys)


def render() -> None:
    runs = common.all_runs()
    named = common.named_runs()
    name_of = {run.key: name for name, run in named.items()}
    keys = sorted(runs, key=lambda k: -runs[k].test_accuracy)
    default = [run.key for run in default_voters(runs.values(), named).values()]
    st.caption("Test images ranked by how likely their given label is wrong: confident learning "
               "(cleanlab) over the test-set probabilities of the voting runs. No run trained on the "
               "test set, so their votes are out of sample. Hover an image for each model's reading.")
    default = [k for k in default if k in runs]
    digits = ["any"] + [str(d) for d in range(10)]
    shows = ["Most suspect first", "Flagged only", "With a verdict"]
    choices = [url_state.Setting("voters", "suspects_voters", default, *url_state.runs_named(keys)),
               url_state.Setting("given", "suspects_given", "any", url_state.one_of(digits)),
               url_state.Setting("suggested", "suspects_suggested", "any", url_state.one_of(digits)),
               url_state.Setting("show", "suspects_show", shows[0], url_state.one_of(shows))]
    url_state.restore(choices)
    _choose(runs, keys, default, name_of, digits, shows)
    url_state.keep(choices)


def _choose(runs: dict, keys: list[str], default: list[str], name_of: dict, digits: list[str],
            shows: list[str]) -> None:
    chosen = st.session_state.get("suspects_voters", default)
    cnns = [k for k in keys if runs[k].config.model != "mlp"]
    accurate = [k for k in keys if runs[k].test_accuracy >= ACCURATE]
    quick = st.columns(4)
    for column, (label, voters, key) in zip(quick, [
            (f"The default {len(default)}", default, "suspects_default"),
            (f"CNNs ({len(cnns)})", cnns, "suspects_cnns"),
            (f"≥ {ACCURATE:.0%} right ({len(accurate)})", accurate, "suspects_accurate"),
            (f"All {len(keys)} runs vote", keys, "suspects_all")]):
        column.button(label, key=key, on_click=_set_voters, args=(voters,), disabled=chosen == voters,
                      width="stretch")
    with st.expander(f"Voting runs: {len(chosen)} chosen, each run's name and test accuracy"):
        chosen = st.multiselect(
            "Voting runs", keys, key="suspects_voters", label_visibility="collapsed",
            format_func=lambda k: f"{name_of.get(k) or runs[k].config.label} ({runs[k].test_accuracy:.2%})")
    if not chosen:
        st.info("Choose at least one run to vote.")
        return
    labels = [name_of.get(k) or runs[k].config.label for k in chosen]
    names = tuple(label if labels.count(label) == 1 else f"{label} [{k[:6]}]"
                  for label, k in zip(labels, chosen))
    try:
        ranking = _ranking(tuple(chosen), names)
    except (OSError, ValueError) as exc:
        st.error(f"These runs cannot vote together: {exc}")
        return
    verdicts = _verdicts().load()
    problem = st.session_state.pop("suspects_problem", None)
    if problem:
        st.error(problem)

    a, b, c = st.columns([1, 1, 2])
    given = a.selectbox("Given label", digits, key="suspects_given")
    suggested = b.selectbox("Suggested label", digits, key="suspects_suggested")
    show = c.radio("Show", shows, horizontal=True, key="suspects_show")
    rows = ranking
    if given != "any":
        rows = rows[rows["given"] == int(given)]
    if suggested != "any":
        rows = rows[rows["suggested"] == int(suggested)]
    if show == "Flagged only":
        rows = rows[rows["flagged"]]
    elif show == "With a verdict":
        rows = rows[rows["index"].isin(list(verdicts))]
    flagged = int(ranking['flagged'].sum())
    st.caption(f"{flagged} of 10,000 labels flagged by confident learning; "
               f"{len(rows):,} shown by these filters; {len(verdicts)} with a verdict. Each card: the "
               "given and the suggested label (the voters' most probable digit on average), how many "
               "voters read that digit, and their mean probability for it.")
    if chosen != default and default:
        by_default = int(_ranking(tuple(default), tuple(k[:12] for k in default))["flagged"].sum())
        if flagged < by_default:
            weakest = min(runs[k].test_accuracy for k in chosen)
            st.info(f"These voters flag {flagged}, the default {len(default)} flag {by_default}: the "
                    f"voters' probabilities are averaged, and runs as weak as {weakest:.1%} right are unsure "
                    "of many labels, so fewer labels stand out as wrong. Fewer, stronger voters "
                    "see more.")
    if rows.empty:
        st.info("No test images match these filters.")
    else:
        pages = (len(rows) - 1) // PAGE_SIZE + 1
        page = st.number_input(f"Page (of {pages:,}, {PAGE_SIZE} per page)", 1, pages, 1, key="suspects_page")
        images = _test_images(common.store_signature())
        shown = rows.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        for start in range(0, len(shown), COLUMNS):
            for column, (_, row) in zip(st.columns(COLUMNS), shown.iloc[start:start + COLUMNS].iterrows()):
                index = int(row["index"])
                with column:
                    st.html(charts.suspect_card(row, images.get(index)))
                    st.segmented_control(f"Verdict on test image {index}", VERDICTS,
                                         default=verdicts.get(index), key=f"verdict_{index}",
                                         format_func=lambda v: v.removeprefix("label "),
                                         on_change=_save, args=(index,), label_visibility="collapsed")
    _export_and_accuracy(ranking, verdicts, names, chosen)


def _export_and_accuracy(ranking, verdicts: dict[int, str], names, chosen) -> None:
    st.download_button(f"Export verdicts as CSV ({len(verdicts)})", verdicts_csv(ranking, verdicts),
                       file_name="mnist_test_label_verdicts.csv", mime="text/csv", disabled=not verdicts,
                       key="suspects_export", on_click="ignore")
    wrong = {index for index, verdict in verdicts.items() if verdict == "label wrong"}
    if not wrong:
        st.caption("Mark images \"label wrong\" to see the models' accuracy with them set aside.")
        return
    labels = _labels(chosen[0])
    rows = [{"model": name, "test accuracy (standard, 10,000 images)": f"{run.test_accuracy:.2%}",
             f"without the {len(wrong)} marked \"label wrong\" ({10_000 - len(wrong):,} images)":
                 f"{accuracy_without(_labels(run.key, given=False), labels, wrong):.2%}"}
            for name, run in common.named_runs().items()]
    st.markdown("**Accuracy with suspect labels set aside** (not the standard figure)")
    st.table(pd.DataFrame(rows).set_index("model"))
