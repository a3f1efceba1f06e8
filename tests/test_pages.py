"""Every dashboard page under Streamlit's AppTest, against the committed results."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

TIMEOUT = 120
APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True)
def empty_user_store(tmp_path_factory, monkeypatch):
    # The pages read the committed cached_results/ plus a user store that starts empty here.
    monkeypatch.setenv("MNIST_LAB_STORE", str(tmp_path_factory.getbasetemp() / "user-store"))


def open_page(page: str | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    if page:
        app.switch_page(page)
        app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_overview_lists_named_models_and_curves():
    app = open_page()
    assert app.title[0].value == "MNIST lab"
    table = app.dataframe[0].value
    assert "baseline_mlp" in table["model"].tolist()
    assert len(app.get("plotly_chart")) == 2
    choice = app.selectbox(key="overview_run")
    choice.select_index(len(choice.options) - 1).run()
    assert not app.exception


def test_lambda_page_reference_grid_and_controls():
    app = open_page("pages/lambda_sweep.py")
    assert "24 of 24 runs stored" in app.caption[0].value
    assert len(app.get("plotly_chart")) == 1
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


def test_width_page():
    app = open_page("pages/width_sweep.py")
    assert len(app.get("plotly_chart")) in (0, 1)
    app.radio(key="width_grid_mode").set_value("Explicit pairs").run()
    app.text_input(key="width_values").input("10:5, 25:x").run()
    assert app.error and not app.exception
    app.text_input(key="width_values").input("10:5, 25:10").run()
    app.slider(key="width_seeds").set_value(1).run()
    assert not app.exception


def test_errors_page_filters_sorts_and_compares():
    app = open_page("pages/errors.py")
    assert "test images wrong" in app.caption[0].value
    app.selectbox(key="errors_true").select("4").run()
    app.selectbox(key="errors_pred").select("9").run()
    app.radio(key="errors_sort").set_value("loss").run()
    assert not app.exception
    run = app.selectbox(key="errors_run")
    run.select_index(1).run()
    app.radio(key="errors_compare_group").set_value("both").run()
    assert not app.exception
    assert len(app.get("metric")) == 3


def test_draw_page_asks_for_a_digit_before_guessing():
    app = open_page("pages/draw.py")
    assert any("Draw a digit" in element.value for element in app.html)
    app.slider(key="stroke_width").set_value(30).run()
    app.button(key="clear_canvas").click().run()
    assert not app.exception


def test_pages_without_models_do_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys\n"
            "import pages.parts.common, pages.parts.charts, pages.parts.sweep_view\n"
            "import mnist_core.errors, mnist_core.report\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(APP).parent, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
