"""Helpers shared by the pages: cached access to the run stores, models and run selection.

Only thin Streamlit wiring lives here; the work is in mnist_core.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager

import streamlit as st

from mnist_core.data import STANDARD_FINGERPRINT, MNISTError, load_mnist, mnist_available
from mnist_core.errors import error_table, images_by_index
from mnist_core.store import Run, Stores
from mnist_core.sweeps import named_runs

SELECTED = "selected_run"  # session key (and query parameter) of the run chosen on any page


_run = threading.local()  # per script run (each run has its own thread)


@contextmanager
def through_navigation():
    """app.py runs the chosen page inside this, so the page knows it came through app.py."""
    _run.through_navigation = True
    try:
        yield
    finally:
        _run.through_navigation = False


def page_setup() -> None:
    """Call first in every page script.

    When a session's first request is a deep link (say /draw) before any session has run
    st.navigation, Streamlit runs the page in its legacy `pages/` mode, without app.py, so
    without our navigation, page config or layout (several sessions opening at once can
    all start that way). Leave that mode and rerun, which goes through app.py's
    st.navigation to the same page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if not getattr(_run, "through_navigation", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


@st.cache_resource
def stores() -> Stores:
    return Stores.default()


@st.cache_resource(show_spinner=False)
def _data_fingerprint(available: bool) -> str:
    if not available:
        return STANDARD_FINGERPRINT
    try:
        return load_mnist().fingerprint
    except MNISTError:
        return STANDARD_FINGERPRINT


def fingerprint() -> str:
    """The data fingerprint runs are looked up with: local MNIST's, else standard MNIST's."""
    return _data_fingerprint(mnist_available())


def store_signature() -> tuple:
    """Cheap to compute; changes whenever a run is published to any store."""
    return tuple((str(s.root), tuple(s.keys())) for s in stores().all)


@st.cache_resource(show_spinner=False, max_entries=8)
def _index(signature: tuple) -> dict[str, Run]:
    return {run.key: run for run in stores().runs()}


def index() -> dict[str, Run]:
    """Every verified run, by key."""
    return _index(store_signature())


def get(key: str) -> Run | None:
    return index().get(key)


@st.cache_resource(show_spinner=False, max_entries=8)
def _named(signature: tuple, fp: str) -> dict[str, Run]:
    return named_runs(stores(), fp)


def named() -> dict[str, Run]:
    return _named(store_signature(), fingerprint())


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _model_or_problem(key: str) -> tuple[object | None, str | None]:
    """A run's Keras model, or why it cannot be loaded: either is kept once per server process."""
    try:
        return _stored(key).load_model(), None
    except (RunUnavailable, ValueError) as exc:
        return None, str(exc)


def model(key: str):
    """A run's Keras model (safe_mode, from the stores only); RunUnavailable if it cannot load."""
    loaded_model, problem = _model_or_problem(key)
    if loaded_model is None:
        raise RunUnavailable(f"Run {key[:12]}…: {problem}")
    return loaded_model


def loadable(keys_by_name: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The named runs whose models load, and a one-line reason for each that does not."""
    usable, problems = {}, []
    for name, key in keys_by_name.items():
        if _model_or_problem(key)[0] is not None:
            usable[name] = key
        else:
            problems.append(f"{name} is left out: {_model_or_problem(key)[1]}")
    return usable, problems


@st.cache_resource(show_spinner="Preparing the models…", max_entries=8)
def predictor(keys_by_name: tuple[tuple[str, str], ...]):
    """The named runs' models as one compiled predictor (mnist_core.predict.predictor)."""
    from mnist_core.predict import predictor as compile_predictor

    predict = compile_predictor({name: model(key) for name, key in keys_by_name})
    # Streamlit's keras.backend.clear_session() after every script run also runs a full
    # gc.collect(): over TensorFlow's object graph, ~0.1-0.2 s per rerun of every session.
    # Freezing what exists now (TensorFlow, the models) keeps it cheap.
    gc.freeze()
    return predict


@st.cache_resource(show_spinner=False, max_entries=16)
def errors_of(key: str):
    """A run's error table and its misclassified images by test index, read once per process."""
    errors = _stored(key).errors()
    return error_table(errors), images_by_index(errors)


class RunUnavailable(LookupError):
    """A run the page listed is gone or no longer verifies (its files changed under the server)."""


def _stored(key: str) -> Run:
    """The run, verified again now: the cached index is only as fresh as the store's key list."""
    run = stores().get(key)
    if run is None:
        _index.clear()  # the listing still shows it: make the next run list the stores afresh
        raise RunUnavailable(f"Run {key[:12]}… is no longer stored, or its files changed and no "
                             "longer verify (the server log says which); it is treated as missing.")
    return run


def loaded(load, *args):
    """`load(*args)` (model, errors or history of a run), or, if the run is no longer
    stored or its files no longer hold what they should, a warning instead of a traceback
    and the page stops there."""
    try:
        return load(*args)
    except RunUnavailable as exc:
        st.warning(f"{exc} Reload the page to see what is stored now.")
    except ValueError as exc:  # mnist_core.safe_read.UnsafeFile: a file changed since it was verified
        _index.clear()
        st.warning(f"This run's files no longer hold what they should ({exc}); it is treated as "
                   "missing. Reload the page to see what is stored now.")
    st.stop()


@st.cache_resource(show_spinner=False, max_entries=32)
def history_of(key: str):
    """A run's per-epoch history, read once per process."""
    return _stored(key).history()


def selected_run() -> Run | None:
    key = st.session_state.get(SELECTED) or st.query_params.get("run")
    return get(key) if isinstance(key, str) and key in index() else None


def select(key: str) -> None:
    if key in index():
        st.session_state[SELECTED] = key
        st.query_params["run"] = key


def run_choices() -> tuple[list[str], dict[str, str]]:
    """Keys of every run, named ones first, with a label for each."""
    names = {run.key: name for name, run in named().items()}
    runs = sorted(index().values(), key=lambda r: (r.key not in names, r.config.model,
                                                  r.config.hidden, r.config.l2, r.config.seed))
    labels = {}
    for run in runs:
        prefix = f"{names[run.key]}: " if run.key in names else ""
        labels[run.key] = f"{prefix}{run.config.label} ({run.test_accuracy:.2%})"
    return [r.key for r in runs], labels


def run_selectbox(label: str, key: str, default: Run | None) -> Run:
    """A selectbox over every run (named first); options are labels so any client can drive it."""
    keys, labels = run_choices()
    options = [f"{labels[k]} · {k[:6]}" for k in keys]
    by_option = dict(zip(options, keys))
    index = keys.index(default.key) if default is not None and default.key in keys else 0
    chosen = st.selectbox(label, options, index=index, key=key)
    return get(by_option[chosen])


def mnist_source() -> str | None:
    """Where this server's MNIST is (for training jobs), or None without one."""
    if not mnist_available():
        return None
    try:
        return load_mnist().source
    except MNISTError:
        return None


def need_mnist_message() -> str | None:
    if mnist_available():
        return None
    return ("MNIST files are not available here, so new points cannot be trained. Set MNIST_PATH "
            "to a Keras-layout mnist.npz (or a folder of the IDX files) and restart the dashboard.")
