"""Helpers shared by the pages: cached access to the run stores, models and run selection.

Only thin Streamlit wiring lives here; the work is in mnist_core.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from functools import partial

import streamlit as st

from mnist_core import catalog
from mnist_core.backends import RAY_ADDRESS_ENV, ray_cluster_info
from mnist_core.data import STANDARD_FINGERPRINT, MNISTError, load_mnist, mnist_available
from mnist_core.executors import ClusterError, cluster_words
from mnist_core.reading.onnx_export import onnx_file
from mnist_core.store import KEY_PATTERN, Run, StoreChain
from pages.parts import serving, url_state

SELECTED = "selected_run"  # session key (and query parameter) of the run chosen on any page
_RUN_WRITTEN = "_selected_run_written"  # the run this session last put in the URL


def page_setup() -> None:
    """Call in every page script after `routing.route()`. The selected run lives in the session
    and in the URL (?run=KEY) on every page, so a page switch, a reload or a copied link keeps it
    (Streamlit drops query parameters on a switch)."""
    asked = st.query_params.get("run")
    written = st.session_state.get(_RUN_WRITTEN)
    if asked is not None and written is not None and asked != written and asked in all_runs():
        st.session_state[SELECTED] = asked  # Back or Forward brought another run: the URL wins
    run = selected_run()
    if run is not None:
        st.session_state[SELECTED] = st.session_state[_RUN_WRITTEN] = run.key
        if st.query_params.get("run") != run.key:
            st.query_params["run"] = run.key
    elif asked is not None:  # a stale or hostile link: said once, and not left to be copied on
        del st.query_params["run"]
        st.toast(f"Ignored from the link: run={url_state.shown(asked)} (no such run is stored; "
                 "`mnist-lab list` shows the runs)")


@st.cache_resource
def stores() -> StoreChain:
    return StoreChain.default()


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
def _all_runs(signature: tuple) -> dict[str, Run]:
    return {run.key: run for run in stores().runs()}


def all_runs() -> dict[str, Run]:
    """Every verified run, by key."""
    return _all_runs(store_signature())


@st.cache_resource(show_spinner=False, max_entries=256)
def _one_run(signature: tuple, key: str) -> Run | None:
    return stores().get(key)


def run_by_key(key: str) -> Run | None:
    """One run, verified once (not every stored run, as all_runs does: the Draw page needs five);
    None for a key that is none (a hostile link's)."""
    if not (isinstance(key, str) and KEY_PATTERN.match(key)):
        return None
    return _one_run(store_signature(), key)


def forget_runs() -> None:
    """List and verify the stores afresh: a run whose files changed is then dropped."""
    _all_runs.clear()
    _one_run.clear()


@st.cache_resource(show_spinner=False, max_entries=8)
def _named_runs(signature: tuple, fp: str) -> dict[str, Run]:
    return catalog.named_runs(stores(), fp)


def named_runs() -> dict[str, Run]:
    """The named runs (baseline_mlp, best_width_mlp, reference_cnn, improved_cnn) that are stored."""
    return _named_runs(store_signature(), fingerprint())


@st.cache_resource(show_spinner=False, max_entries=64)
def _onnx_export(key: str) -> Future:
    """The export of a run stored without its ONNX model (one trained before they were made),
    once per server, in the TensorFlow thread after any reading: the page goes on without it."""
    from mnist_core.reading.onnx_export import export

    run = _listed(key)
    return serving.start_in_tensorflow_thread(export, stores(), run)


def loadable(keys_by_name: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The runs that can be read now (their ONNX model stored), and a line for each that cannot
    (yet: a run without one gets it made in the background and joins a later stroke's reading)."""
    usable, problems = {}, []
    for name, key in keys_by_name.items():
        try:
            run = _listed(key)
        except RunUnavailable as exc:
            problems.append(f"{name} is left out: {exc}")
            continue
        if onnx_file(stores(), run) is not None:
            usable[name] = key
            continue
        export = _onnx_export(key)
        if not export.done():
            problems.append(f"{name} is being prepared for reading (its ONNX model is made once, "
                            "usually in 10-30 s); it joins the reading at a stroke after that.")
        elif isinstance(export.exception(), (ValueError, OSError)):  # UnsafeFile among them
            forget_runs()  # list the stores afresh: the run is re-verified and, if bad, dropped
            problems.append(f"{name} is left out: run {key[:12]}… cannot be used: its files no longer "
                            f"verify ({export.exception()}).")
        elif export.exception() is not None:
            problems.append(f"{name} is left out: its ONNX model could not be made "
                            f"({export.exception()}).")
        else:
            forget_runs()  # listed again, now with its ONNX model
            usable[name] = key
    return usable, problems


@st.cache_resource(show_spinner="Preparing the models…", max_entries=8)
def predictor(keys_by_name: tuple[tuple[str, str], ...], embedding_of: str | None = None):
    """The runs' models in ONNX Runtime (mnist_core.reading.runtime.predictor), returning the
    penultimate layer of model `embedding_of` too (for the not-a-digit check). No TensorFlow."""
    from mnist_core.reading.runtime import predictor as onnx_predictor

    return onnx_predictor({name: _listed(key) for name, key in keys_by_name}, stores(), embedding_of)


@st.cache_resource(show_spinner=False, max_entries=8)
def readers(keys_by_name: tuple[tuple[str, str], ...]):
    """(temperature per model name, the not-a-digit check or None, notes) for these runs, kept
    as long as their predictor is (by the same keys: nothing is looked up per stroke)."""
    from mnist_core.reading.reading import readers_for

    return readers_for({name: _listed(key) for name, key in keys_by_name})


@st.cache_resource(show_spinner=False, max_entries=64)
def calibration_of(key: str):
    """A run's mnist_core.reading.calibration.Calibration from its stored test probabilities."""
    from mnist_core.reading.calibration import calibrate
    from mnist_core.suspects import given_labels

    run = _listed(key)
    return calibrate(run.predictions(), given_labels(run))


@st.cache_resource(show_spinner=False, max_entries=8)
def _inspector_future(key: str) -> Future:
    """A run's mnist_core.reading.inside.Inspector, being built (TensorFlow imported, the model
    loaded and compiled) in the TensorFlow thread; nobody waits for it unless they ask."""
    run = _listed(key)  # a run that is gone is said to the caller (RunUnavailable)

    def build():
        from mnist_core.reading.inside import Inspector  # imports TensorFlow: here, not in the caller

        try:
            built = Inspector(run.load_model())
        except (ValueError, OSError):  # its files changed since it was listed: list them again
            forget_runs()
            raise
        serving.freeze_heap()
        return built

    return serving.start_in_tensorflow_thread(build)


def prepare_inspector(key: str) -> None:
    """Start building run `key`'s inspector in the background (TensorFlow's import among it)."""
    try:
        _inspector_future(key)
    except RunUnavailable:
        pass


def inspector_ready(key: str) -> bool:
    return _inspector_future(key).done()


def inspector(key: str):
    """A run's mnist_core.reading.inside.Inspector (waits for it to be built)."""
    return _inspector_future(key).result()


@st.cache_resource(show_spinner=False, max_entries=8)
def subset_search(key: str):
    """(a mnist_core.reading.neighbours.Search over the committed subset of training digits, placed in
    run `key`'s penultimate layer; or None, why not). Committed for the named models: no wait."""
    from mnist_core.reading.neighbours import (
        Neighbours,
        Search,
        embeddings_file,
        read_embeddings,
        read_subset,
    )
    from mnist_core.store import sha256_file

    try:
        subset = read_subset()
    except (ValueError, OSError) as exc:
        return None, (f"The nearest training digits cannot be shown: {exc}. Restore "
                      "cached_results/neighbours/ from the repository.")
    try:
        embeddings = read_embeddings(embeddings_file(key), sha256_file(_listed(key).model_path),
                                     len(subset.labels))
    except (ValueError, OSError):
        embeddings = serving.in_tensorflow_thread(inspector(key).embed, subset.floats())
    return Search(Neighbours(embeddings, subset)), None


@st.cache_resource(show_spinner=False, max_entries=8)
def _neighbours(key: str, source: str | None):
    from mnist_core.reading.neighbours import all_training_digits, search_all_wanted

    search, problem = subset_search(key)
    if search is not None and source and search_all_wanted():
        # each batch in the TensorFlow thread, like all of the dashboard's TensorFlow work, after
        # any reading waiting there
        search.upgrade(partial(serving.after_readings, inspector(key).embed),
                       lambda: all_training_digits(load_mnist(source)))
    return search, problem


def neighbours_of(key: str):
    """(a mnist_core.reading.neighbours.Search: the committed subset at once, all 60,000 training digits
    once placed when MNIST is at hand; or None, why not)."""
    return _neighbours(key, mnist_source())


@st.cache_resource(show_spinner=False, max_entries=16)
def errors_of(key: str):
    """A run's error table and its misclassified images by test index, read once per process."""
    from mnist_core.mistakes import error_table, images_by_index  # pandas: not before the Draw page's canvas

    errors = _listed(key).errors()
    return error_table(errors), images_by_index(errors)


class RunUnavailable(LookupError):
    """A run the page listed is gone or no longer verifies (its files changed under the server)."""


def _listed(key: str) -> Run:
    """The run as listed: verified when the stores were listed; its readers check its files
    again as they read them, so a run changed since is caught there."""
    run = run_by_key(key)
    if run is None:
        raise RunUnavailable(f"Run {key[:12]}… is no longer stored.")
    return run


def read_or_stop(read, *args):
    """`read(*args)` (a run's model, errors or history), or, if the run is gone or its files
    no longer hold what they should, a warning instead of a traceback, and the page stops."""
    try:
        return read(*args)
    except RunUnavailable as exc:
        st.warning(f"{exc} Reload the page to see what is stored now.")
    except (ValueError, OSError) as exc:  # UnsafeFile: a file changed since the run was listed
        forget_runs()
        st.warning(f"This run cannot be used: its files no longer verify ({exc}); it is treated as "
                   "missing. Reload the page to see what is stored now.")
    st.stop()


@st.cache_resource(show_spinner=False, max_entries=32)
def history_of(key: str):
    """A run's per-epoch history, read once per process."""
    return _listed(key).history()


def selected_run() -> Run | None:
    key = st.session_state.get(SELECTED) or st.query_params.get("run")
    return run_by_key(key) if isinstance(key, str) else None


def select(key: str) -> None:
    if key in all_runs():
        st.session_state[SELECTED] = key
        st.query_params["run"] = key


def run_choices() -> tuple[list[str], dict[str, str]]:
    """Keys of every run, named ones first, with a label for each."""
    names = {run.key: name for name, run in named_runs().items()}
    runs = sorted(all_runs().values(), key=lambda r: (r.key not in names, r.config.model,
                                                  r.config.hidden, r.config.l2, r.config.seed))
    labels = {}
    for run in runs:
        prefix = f"{names[run.key]}: " if run.key in names else ""
        labels[run.key] = f"{prefix}{run.config.label} ({run.test_accuracy:.2%})"
    return [r.key for r in runs], labels


def run_options() -> dict[str, str]:
    """Every run's key (named first) with the text a selectbox shows for it: its label and key prefix,
    so that any client (a person, a test) can drive the box by text."""
    keys, labels = run_choices()
    return {k: f"{labels[k]} · {k[:6]}" for k in keys}


def run_selectbox(label: str, key: str, default: Run | None) -> Run:
    """A selectbox over every run (named first). Its choice may be kept in the URL by `run_setting`."""
    option = run_options()
    keys, options = list(option), list(option.values())
    by_option = dict(zip(options, keys))
    index = keys.index(default.key) if default is not None and default.key in keys else 0
    chosen = st.selectbox(label, options, index=None if key in st.session_state else index, key=key)
    return run_by_key(by_option[chosen])


def run_setting(param: str, key: str, default: Run | None) -> url_state.Setting:
    """The choice of a `run_selectbox` as a URL setting, written as the run's key."""
    option = run_options()
    run_of = {text: k for k, text in option.items()}
    first = default.key if default is not None and default.key in option else next(iter(option))
    return url_state.Setting(param, key, option[first], url_state.one_of_named(option), run_of.__getitem__)


def selected_run_box(label: str, key: str, default: Run | None) -> Run:
    """A selectbox that is the selected run (?run=): it shows the selection (or `default` while
    there is none), and choosing in it selects, so a reload, a copied link and Back keep it."""
    options = run_options()
    current = selected_run() or default
    shown = current.key if current is not None and current.key in options else next(iter(options))
    st.session_state[key] = options[shown]
    by_option = {option: k for k, option in options.items()}
    chosen = st.selectbox(label, list(options.values()), key=key,
                          on_change=lambda: select(by_option[st.session_state[key]]))
    return run_by_key(by_option[chosen])


def mnist_source() -> str | None:
    """Where this server's MNIST is (for training jobs), or None without one."""
    if not mnist_available():
        return None
    try:
        return load_mnist().source
    except MNISTError:
        return None


def get_mnist_button(key: str) -> None:
    """Offer to download MNIST (for training) where it is missing; a progress bar while it comes."""
    from mnist_core.download import SIZE_MB, download_mnist

    if not st.button(f"Get MNIST ({SIZE_MB} MB)", key=key, type="primary",
                     help="Downloads Keras's mnist.npz, checks it and keeps it in your user data folder"):
        return
    bar = st.progress(0.0, text="Downloading MNIST…")

    def progress(done: int, total: int | None) -> None:
        bar.progress(min(1.0, done / (total or SIZE_MB * 1e6)),
                     text=f"Downloading MNIST… {done / 1e6:.1f} MB")

    try:
        path = download_mnist(progress=progress)
    except MNISTError as exc:
        bar.empty()
        st.error(f"MNIST could not be downloaded: {exc}")
        return
    st.toast(f"MNIST saved to {path}")
    st.rerun()


@st.cache_data(ttl=60, show_spinner="Asking the Ray cluster how big it is…")
def training_place() -> dict:
    """Where training jobs run: {"ray": bool, "where": words, "cpus": n or None, "error": why not}."""
    address = os.environ.get(RAY_ADDRESS_ENV)
    if not address:
        return {"ray": False, "where": "this machine", "cpus": None, "error": None}
    try:
        info = ray_cluster_info(address)
    except ClusterError as exc:
        return {"ray": True, "where": f"the Ray cluster at {address}", "cpus": None, "error": str(exc)}
    return {"ray": True, "where": f"{cluster_words(info)} at {address}", "cpus": info["cpus"], "error": None}


def need_mnist_message() -> str | None:
    if mnist_available():
        return None
    return ("MNIST is not on this machine, so new points cannot be trained: get it below, or set "
            "MNIST_PATH to a Keras-layout mnist.npz (or a folder of the IDX files) and restart.")
