"""Every dashboard page under Streamlit's AppTest, against the committed results."""

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

TIMEOUT = 120
APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True)
def empty_user_store(tmp_path_factory, monkeypatch):
    # The pages read the committed cached_results/ plus a user store that starts empty here.
    monkeypatch.setenv("MNIST_LAB_STORE", str(tmp_path_factory.getbasetemp() / "user-store"))


def open_page(page: str | None = None, query: dict[str, str] | None = None) -> AppTest:
    """The app, on `page` if given, as a link with `query` opens it."""
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    if page:
        app.switch_page(page)
        for name, value in (query or {}).items():
            app.query_params[name] = value
        app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_overview_lists_named_models_and_curves():
    app = open_page()
    assert app.title[0].value == "MNIST lab"
    table = app.get("html")[0].value
    assert all(f'<td data-label="model">{name}</td>' in table
               for name in ("baseline_mlp", "best_width_mlp", "reference_cnn", "improved_cnn"))
    assert "fused" not in table and "keras_fit" not in table  # said in words, not our jargon
    assert len(app.get("echarts_chart")) == 3  # loss, accuracy, reliability diagram
    choice = app.selectbox(key="overview_run")
    choice.select_index(len(choice.options) - 1).run()
    assert not app.exception


def test_overview_says_how_far_each_models_confidence_can_be_trusted():
    import json

    app = open_page()
    calibration = app.get("html")[1].value
    for name in ("baseline_mlp", "best_width_mlp", "reference_cnn", "improved_cnn"):
        assert f'<td data-label="model">{name}</td>' in calibration
    assert "ECE after scaling" in calibration and "they were overconfident" in calibration
    rows = dict(re.findall(r'data-label="model">(\w+)</td>.*?data-label="what scaling did">([^<]*)<',
                           calibration, re.S))
    for name, said in rows.items():  # never "softened overconfident" where the ECE rose
        before, after = re.search(rf'{name}</td>.*?data-label="ECE as given">([\d.]+)%.*?'
                                  r'data-label="ECE after scaling">([\d.]+)%', calibration, re.S).groups()
        assert ("rose" in said) == (float(after) > float(before) and "almost nothing" not in said), said
    assert any("even positions" in c.value and "odd" in c.value for c in app.caption)
    app.selectbox(key="calibration_model").set_value("reference_cnn").run()
    assert not app.exception
    chart = json.loads(app.get("echarts_chart")[2].proto.spec)
    assert chart["title"]["text"] == "reference_cnn: accuracy against confidence"
    before, after = chart["series"][1], chart["series"][2]
    assert before["name"].startswith("as given (ECE") and after["name"].startswith("after scaling, T = ")
    assert sum(point["value"][2] for point in after["data"]) == 5000  # the held half, every image in a bin
    sizes = {point["value"][2]: point["symbolSize"] for point in after["data"]}
    assert sizes[max(sizes)] == 20 and sizes[min(sizes)] < 10  # a sparse bin looks sparse


@pytest.mark.slow
def test_lambda_page_reference_grid_and_controls():
    app = open_page("pages/lambda_sweep.py")
    assert "24 of 24 runs stored" in app.caption[0].value
    assert len(app.get("echarts_chart")) == 1
    app.radio(key="lambda_grid_mode").set_value("Explicit values").run()
    app.text_input(key="lambda_values").input("0, 0.001, 0.3").run()
    assert "9 of 9 runs stored" in app.caption[0].value
    app.select_slider(key="lambda_epochs").set_value(2).run()
    assert "0 of 9 runs stored" in app.caption[0].value
    assert any("Train 9 missing" in b.label for b in app.button)
    app.text_input(key="lambda_values").input("0, banana").run()
    assert not app.exception
    assert "banana" in app.error[0].value
    app.radio(key="lambda_grid_mode").set_value("Log range").run()
    app.slider(key="lambda_count").set_value(4).run()
    assert not app.exception


def test_sweep_settings_come_from_the_url_and_go_back_to_it():
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/lambda_sweep.py")
    for name, value in {"grid": "log", "range": "-4.0,-1.0", "points": "4", "zero": "False",
                        "epochs": "5", "seeds": "1", "images": "2000"}.items():
        app.query_params[name] = value
    app.run()
    assert not app.exception
    assert app.radio(key="lambda_grid_mode").value == "Log range"
    assert app.select_slider(key="lambda_range").value == (-4.0, -1.0)
    assert any("0 of 4 runs stored · 5 epochs · 1 seed · 2,000 training images" in c.value
               for c in app.caption)
    assert any(c.value == "λ = 0.0001, 0.001, 0.01, 0.1" for c in app.caption)
    app.select_slider(key="lambda_epochs").set_value(10).run()
    assert app.query_params["epochs"] == "10" and app.query_params["grid"] == "log"
    app.select_slider(key="lambda_epochs").set_value(60).run()
    assert "epochs" not in app.query_params  # the default is not written


def test_a_range_given_high_first_in_the_link_is_read_low_first():
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/width_sweep.py")
    app.query_params["grid"], app.query_params["range"] = "range", "1200/480,100/40"
    app.run()
    assert not app.exception
    assert app.select_slider(key="width_range").value == ("100/40", "1200/480")
    assert any("of 15 runs stored" in c.value for c in app.caption)  # 5 pairs, 3 seeds


def test_a_link_with_values_the_page_does_not_offer_is_ignored_not_raised():
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    app.switch_page("pages/lambda_sweep.py")
    for name, value in {"grid": "nonsense", "epochs": "7", "seeds": "x", "range": "-9,3"}.items():
        app.query_params[name] = value
    app.run()
    assert not app.exception
    assert app.radio(key="lambda_grid_mode").value == "Reference grid"
    assert any("24 of 24 runs stored · 60 epochs · 3 seeds" in c.value for c in app.caption)


def test_the_grid_page_draws_the_committed_grid_keeps_its_settings_in_the_url_and_says_the_best_lambdas():
    app = open_page("pages/grid.py")
    assert app.title[0].value == "λ × width grid"
    assert any("20 of 20 runs stored · 60 epochs · 1 seed · 60,000 training images" in c.value
               for c in app.caption)
    [chart] = app.get("echarts_chart")
    best = next(c.value for c in app.caption if c.value.startswith("Lowest test error per width"))
    for width in ("25/15", "100/40", "250/100", "600/240"):
        assert f"{width}: λ = " in best
    app.text_input(key="grid_values").input("0, 0.01").run()
    app.text_input(key="grid_pairs").input("25:15, 100:40").run()
    assert app.query_params["values"] == "0, 0.01" and app.query_params["pairs"] == "25:15, 100:40"
    assert any("4 of 4 runs stored" in c.value for c in app.caption)
    app.text_input(key="grid_pairs").input("25:x").run()
    assert app.error and not app.exception  # said, and the last valid grid still shown
    assert any("4 of 4 runs stored" in c.value for c in app.caption)
    app.text_input(key="grid_pairs").input("25:15, 100:40, 33:11").run()  # a width never trained
    assert any("4 of 6 runs stored" in c.value for c in app.caption)
    assert any(b.label == "Train 2 missing runs in the background (120 model-epochs)" for b in app.button)


@pytest.mark.slow
def test_a_request_over_the_job_limits_offers_no_train_button_and_says_why():
    app = open_page("pages/lambda_sweep.py")
    app.radio(key="lambda_grid_mode").set_value("Log range").run()
    app.slider(key="lambda_count").set_value(12).run()
    app.select_slider(key="lambda_epochs").set_value(5).run()
    assert not any(b.label.startswith("Train") for b in app.button)
    assert any("a job may train at most 24 runs, this one asks for 39" in w.value for w in app.warning)
    wide = open_page("pages/width_sweep.py")
    wide.radio(key="width_grid_mode").set_value("Explicit pairs").run()
    wide.text_input(key="width_values").input("2000:10").run()
    assert not any(b.label.startswith("Train") for b in wide.button)
    assert any("widths up to 1200" in w.value for w in wide.warning)


def test_width_page():
    app = open_page("pages/width_sweep.py")
    assert len(app.get("echarts_chart")) in (0, 1)
    app.radio(key="width_grid_mode").set_value("Explicit pairs").run()
    app.text_input(key="width_values").input("10:5, 25:x").run()
    assert app.error and not app.exception
    app.text_input(key="width_values").input("10:5, 25:10").run()
    app.slider(key="width_seeds").set_value(1).run()
    assert not app.exception


@pytest.mark.slow
def test_errors_page_filters_sorts_and_compares():
    app = open_page("pages/errors.py")
    assert "test images wrong" in app.caption[0].value
    app.selectbox(key="errors_true").select("4").run()
    app.selectbox(key="errors_pred").select("9").run()
    app.radio(key="errors_sort").set_value("loss").run()
    assert not app.exception
    run = app.selectbox(key="errors_run")
    run.select_index(1).run()
    assert "errors_compare_group" not in [r.key for r in app.radio]  # not computed until opened
    app.session_state["tab"] = "Compare two runs"  # what a click on the tab sets
    app.run()
    app.radio(key="errors_compare_group").set_value("both").run()
    assert not app.exception
    assert len(app.get("metric")) == 3


def test_draw_page_asks_for_a_digit_before_guessing():
    app = open_page("pages/draw.py")
    assert any("Draw a digit" in element.value for element in app.html)
    app.segmented_control(key="stroke_width").set_value(28).run()
    app.button(key="clear_canvas").click().run()
    assert not app.exception


def test_the_draw_page_sends_its_canvas_before_it_looks_up_or_loads_any_model(monkeypatch):
    """On a fresh server the look-up and the models' loading take about a second: a first
    visitor gets the canvas first (benchmarks/cold_start.py measures it)."""
    from pages.parts import common

    def looked_up(*_):
        raise RuntimeError("the models were looked up")

    monkeypatch.setattr(common, "named_runs", looked_up)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.switch_page("pages/draw.py")
    app.run()
    assert [e.value for e in app.exception] == ["the models were looked up"]
    assert "bidi_component" in element_types(app.main)  # the canvas, sent before the look-up
    assert app.button(key="clear_canvas") and app.segmented_control(key="stroke_width").value == 20


def element_types(block) -> list[str]:
    """The types of every element under `block`, depth first."""
    found = []
    for child in getattr(block, "children", {}).values():
        found += [child.type, *element_types(child)]
    return found


@pytest.mark.slow
def test_the_inside_view_is_off_until_asked_for_then_names_the_model_to_draw_for():
    app = open_page("pages/draw.py")
    assert app.toggle(key="look_inside").value is False
    assert not app.selectbox  # nothing of it shows, nothing of it is computed
    app.toggle(key="look_inside").set_value(True).run()
    assert not app.exception
    assert app.selectbox(key="inside_model").value == "improved_cnn"
    assert any(c.value == "Draw a digit to see inside improved_cnn." for c in app.caption)
    app.selectbox(key="inside_model").select("baseline_mlp").run()
    assert any(c.value == "Draw a digit to see inside baseline_mlp." for c in app.caption)
    assert not app.exception
    assert (app.query_params["inside"], app.query_params["model"]) == ("True", "baseline_mlp")
    app.toggle(key="look_inside").set_value(False).run()
    assert "inside" not in app.query_params and "model" not in app.query_params


def test_a_link_to_the_draw_page_brings_back_look_inside_its_model_and_the_stroke_width():
    app = open_page("pages/draw.py", query={"inside": "True", "model": "baseline_mlp", "stroke": "32"})
    assert not app.exception
    assert app.toggle(key="look_inside").value is True
    assert app.selectbox(key="inside_model").value == "baseline_mlp"
    assert app.segmented_control(key="stroke_width").value == 32
    nonsense = open_page("pages/draw.py", query={"inside": "yes", "model": "no_such_model", "stroke": "99"})
    assert not nonsense.exception
    assert nonsense.toggle(key="look_inside").value is False
    assert nonsense.segmented_control(key="stroke_width").value == 20
    assert any("Ignored from the link" in toast.value for toast in nonsense.toast)


def test_pages_without_models_do_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys\n"
            "import pages.parts.common, pages.parts.charts, pages.parts.sweep_view\n"
            "import mnist_core.mistakes, mnist_core.report, mnist_core.catalog, mnist_core.jobs\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(APP).parent, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def unnamed_committed_mlp_key() -> str:
    """A stored run that no page shows unless it is selected."""
    from mnist_core.catalog import named_runs
    from mnist_core.data import STANDARD_FINGERPRINT
    from mnist_core.store import StoreChain

    stores = StoreChain.default(committed=True)
    names = {run.key for run in named_runs(stores, STANDARD_FINGERPRINT).values()}
    return min(run.key for run in stores.runs() if run.key not in names and run.config.model == "mlp")


@pytest.mark.parametrize("value", ["../../etc/passwd", "/etc/passwd", "%2e%2e%2f", "A" * 64, "0" * 64,
                                   "<script>alert(1)</script>", ""])
def test_a_hostile_run_parameter_selects_nothing(value):
    for page in ("pages/errors.py", "pages/draw.py", "pages/overview.py", "pages/lambda_sweep.py"):
        app = AppTest.from_file(APP, default_timeout=TIMEOUT)
        app.query_params["run"] = value
        app.run()
        app.switch_page(page)
        app.run()
        assert not app.exception, (page, [e.value for e in app.exception])
        if page == "pages/errors.py":  # nothing selected: the page's own default run
            assert app.selectbox(key="errors_run").value.startswith("improved_cnn")


@pytest.mark.parametrize("value", ["nope", "x" * 10_000, "√∂\u200b\n", "0" * 64])
def test_a_run_in_a_link_that_names_no_stored_run_is_said_once_and_taken_out_of_the_url(value):
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.query_params["run"] = value
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    said = [t.value for t in app.toast if "run=" in t.value]
    assert len(said) == 1 and "no such run is stored" in said[0] and len(said[0]) < 200, said
    assert "\n" not in said[0]
    assert "run" not in app.query_params


def test_links_are_read_as_people_write_them_and_what_is_ignored_leaves_the_url():
    app = open_page("pages/draw.py", query={"inside": "true", "stroke": "999"})
    assert app.toggle(key="look_inside").value is True  # true in any case, as True is written
    assert "stroke" not in app.query_params  # ignored, said, and not left to be copied on
    assert any("stroke=999" in t.value for t in app.toast)
    errors = open_page("pages/errors.py", query={"tab": "nope"})
    assert any("tab=nope" in t.value for t in errors.toast) and "tab" not in errors.query_params
    suspects = open_page("pages/errors.py", query={"tab": "Suspect labels", "voters": "0123abcd,",
                                                   "show": "all", "given": "7"})
    assert not suspects.exception
    assert any("voters=0123abcd," in t.value and "show=all" in t.value for t in suspects.toast)
    assert dict(suspects.query_params) == {"tab": "Suspect labels", "given": "7"}
    assert suspects.selectbox(key="suspects_given").value == "7"
    compare = open_page("pages/errors.py", query={"tab": "Compare two runs", "b": "f" * 64, "group": "both"})
    assert any(f"b={'f' * 40}…" in t.value for t in compare.toast)
    assert dict(compare.query_params) == {"tab": "Compare two runs", "group": "both"}
    overview = open_page("pages/overview.py", query={"diagram": "nope"})
    assert any("diagram=nope" in t.value for t in overview.toast) and not overview.query_params


def test_a_run_parameter_naming_a_stored_run_selects_it():
    key = unnamed_committed_mlp_key()
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.query_params["run"] = key
    app.run()
    app.switch_page("pages/errors.py")
    app.run()
    assert not app.exception
    assert app.selectbox(key="errors_run").value.endswith(key[:6])
    app.switch_page("pages/draw.py")
    app.run()
    assert not app.exception
    # Committed without its ONNX model, the run gets one made in the background (once per
    # server, kept in the user store) and joins the reading at a later run of the page.
    deadline = time.monotonic() + 180
    while "<b>selected: MLP" not in app.html[0].value and time.monotonic() < deadline:
        assert any("being prepared for reading" in w.value for w in app.warning)
        time.sleep(1)
        app.run()
    invitation = app.html[0].value
    assert "<b>improved_cnn</b>" in invitation and "<b>selected: MLP" in invitation
    assert not app.warning


def test_a_remembered_model_to_look_inside_that_is_no_longer_offered_falls_back_to_the_default():
    key = unnamed_committed_mlp_key()
    app = open_page("pages/draw.py", query={"run": key})
    app.toggle(key="look_inside").set_value(True).run()
    choices = app.selectbox(key="inside_model").options
    chosen = next(option for option in choices if option.startswith("selected: "))
    app.selectbox(key="inside_model").select(chosen).run()
    app.switch_page("pages/errors.py")
    app.run()
    named = app.selectbox(key="errors_run")
    named.select(next(option for option in named.options if option.startswith("reference_cnn"))).run()
    app.switch_page("pages/draw.py")  # the selected run is now a named one: no "selected:" model
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    app.toggle(key="look_inside").set_value(True).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="inside_model").value == "improved_cnn"  # the default again


@pytest.fixture
def own_user_store(monkeypatch):
    """For tests that point MNIST_LAB_STORE elsewhere: the pages' cached stores must not outlive it."""
    import streamlit as st

    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


@pytest.mark.usefixtures("own_user_store")
def test_a_job_whose_worker_died_is_shown_failed_and_can_be_retried(tmp_path, monkeypatch, mnist):
    import json
    import time

    monkeypatch.setenv("MNIST_PATH", mnist.source)
    store = tmp_path / "store"
    monkeypatch.setenv("MNIST_LAB_STORE", str(store))
    job = store / ".jobs" / ("ab" * 16)
    job.mkdir(parents=True)
    # what a worker killed mid-run leaves: state "running", and no process holding the job's lock
    (job / "state.json").write_text(json.dumps({
        "status": "running", "title": "lambda sweep: 3 runs", "configs": [], "store": str(store),
        "epochs_done": 4, "epochs_total": 60, "launched": time.time() - 60, "pid": 999999}))
    app = open_page("pages/lambda_sweep.py")
    app.radio(key="lambda_grid_mode").set_value("Explicit values").run()
    app.text_input(key="lambda_values").input("0.0005").run()
    assert any("lambda sweep: 3 runs failed" in e.value and "retry" in e.value for e in app.error)
    assert any(b.label.startswith("Train 3 missing") for b in app.button)  # the retry


@pytest.mark.slow
@pytest.mark.usefixtures("own_user_store")
def test_a_run_whose_files_change_under_the_server_is_reported_not_raised(tmp_path, monkeypatch, mnist):
    from mnist_core.configs import RunConfig
    from mnist_core.store import StoreChain
    from mnist_core.sweeps import ensure_runs

    store = tmp_path / "store"
    monkeypatch.setenv("MNIST_LAB_STORE", str(store))
    (run,) = ensure_runs([RunConfig(hidden=(25, 15), epochs=1, limit=1000)], mnist, StoreChain.default(store),
                         fused=False, progress=False)
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.query_params["run"] = run.key
    app.run()  # the dashboard has listed and verified the run, and selected it
    for name in ("model.keras", "errors.npz"):
        with open(run.path / name, "r+b") as handle:
            handle.truncate(100)
    app.switch_page("pages/draw.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    deadline = time.monotonic() + 120  # its ONNX model is being made from the damaged model.keras
    while not any("no longer verify" in w.value for w in app.warning) and time.monotonic() < deadline:
        time.sleep(1)
        app.run()
    assert any("no longer verify" in w.value for w in app.warning)
    app.switch_page("pages/errors.py")  # the damaged run is no longer listed, so not selected
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="errors_run").value.startswith("improved_cnn")
    assert run.key[:6] not in " ".join(app.selectbox(key="errors_run").options)


@pytest.mark.slow
@pytest.mark.usefixtures("own_user_store")
def test_a_stalled_job_is_shown_with_a_cancel_button_that_ends_it(tmp_path, monkeypatch, mnist, request):

    from mnist_core import jobs
    from mnist_core.configs import RunConfig
    from mnist_core.store import StoreChain
    from tests.test_reliability import process_ended, stop_until_the_test_ends, wait_for, wait_for_message

    monkeypatch.setattr(jobs, "STALL_AFTER_S", 8)
    monkeypatch.setenv("MNIST_PATH", mnist.source)
    store = tmp_path / "store"
    monkeypatch.setenv("MNIST_LAB_STORE", str(store))
    configs = [RunConfig(hidden=(25, 15), epochs=30, limit=20000, seed=s) for s in (5, 6)]
    job = jobs.start(configs, StoreChain.default(store), mnist.fingerprint, "lambda sweep: 2 runs",
                     data_path=mnist.source)
    pid = wait_for(job.folder, {"running"}).state["pid"]
    wait_for_message(job.folder, "epoch")
    stop_until_the_test_ends(request, pid)
    wait_for(job.folder, {"stalled"}, timeout=30)
    app = open_page("pages/lambda_sweep.py")
    stalled = [w.value for w in app.warning if "stalled" in w.value]
    assert stalled and f"pid {pid}" in stalled[0]
    app.button(key=f"cancel_{job.id}").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert jobs.load(job.folder).status == "cancelled" and process_ended(pid)
    assert not [w for w in app.warning if "stalled" in w.value]
    assert any("Cancelled: 0 of 2 runs were stored" in i.value for i in app.info)
    newcomer = open_page("pages/lambda_sweep.py")  # who never saw the job is not told how it ended
    assert not any("Cancelled" in i.value for i in newcomer.info)


def test_the_runs_page_reads_its_filters_and_ticks_from_a_link_and_says_what_it_ignored():
    from mnist_core.catalog import named_runs
    from mnist_core.data import STANDARD_FINGERPRINT
    from mnist_core.store import StoreChain

    named = named_runs(StoreChain.default(committed=True), STANDARD_FINGERPRINT)
    ticked = f"{named['baseline_mlp'].key[:8]},{named['reference_cnn'].key[:8]}"
    app = open_page("pages/runs.py", query={"compare": ticked, "kinds": "mlp", "sort": "seed"})
    assert any(h.value == "2 runs compared" for h in app.subheader)
    assert any(c.value.startswith("Showing ") and " · 2 of at most 6 ticked" in c.value for c in app.caption)
    assert len(app.get("echarts_chart")) == 4  # loss, accuracy, per digit, parallel coordinates
    hostile = open_page("pages/runs.py", query={"compare": "deadbeef", "least": "2", "kinds": "mlp,nope"})
    assert any("compare=deadbeef" in t.value and "least=2" in t.value for t in hostile.toast)
    assert not hostile.query_params and not [h for h in hostile.subheader if "compared" in h.value]
