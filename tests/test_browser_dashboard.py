"""What a new visitor does on each page, in a real Chromium: click a confusion cell, select a run
and reload, mistype a grid, tap the canvas, read the axes and tables, get MNIST."""

import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from pages.parts.charts import HEATMAP_GRID, SWEEP_GRID
from tests.browser import (
    chart_box,
    chart_cell,
    chart_text_clashes,
    choose,
    clear,
    click_at,
    draw,
    draw_strokes,
    drawn,
    file_server,
    require_chromium,
    settled,
    streamlit_server,
    wait_until_idle,
    x_axis_labels,
)

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
expect.set_options(timeout=60_000)
SHARED_MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist.npz"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    folder = tmp_path_factory.mktemp("dashboard")
    with streamlit_server(folder / "store", folder / "streamlit.log") as url:
        yield url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def no_exception(page):
    expect(page.get_by_test_id("stException")).to_have_count(0)


def open_page(page, url, path, heading):
    page.goto(f"{url}/{path}")
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidgetRunningIcon]')")


def test_clicking_a_confusion_matrix_cell_shows_only_those_mistakes_until_cleared(page, server):
    open_page(page, server, "errors", "Misclassified test images")
    chart = page.get_by_test_id("stEChartsChart").first
    expect(chart.get_by_text("1003", exact=True)).to_be_visible()  # the matrix is drawn (true 9 as 9)
    chart_cell(page, chart, column=9, row=4)  # true 4 (row), predicted 9 (column)
    filter_note = page.get_by_text(re.compile(r"Showing \d+ mistakes: true 4, predicted 9\."))
    expect(filter_note).to_be_visible()
    browse = page.get_by_role("tabpanel").first
    count = int(re.search(r"Showing (\d+)", filter_note.inner_text()).group(1))
    shown = browse.locator("[data-mistake]")
    expect(shown).to_have_count(count)  # only those mistakes, each captioned as one
    expect(browse.locator('[data-mistake][data-true="4"][data-predicted="9"]')).to_have_count(count)
    expect(shown.first).to_contain_text(re.compile(r"4 → 9 \d+\.\d\d%"))
    outlined = page.get_by_test_id("stEChartsChart").first.locator('svg path[stroke="#000"]')
    expect(outlined).to_have_count(1)  # that cell, not its column
    page.get_by_role("button", name="Clear filter").click()
    expect(filter_note).to_have_count(0)
    expect(shown).not_to_have_count(count)
    expect(outlined).to_have_count(0)
    chart_cell(page, page.get_by_test_id("stEChartsChart").first, column=9, row=4)  # the same cell again
    expect(filter_note).to_be_visible()
    expect(outlined).to_have_count(1)
    chart_cell(page, page.get_by_test_id("stEChartsChart").first, column=3, row=3)  # a diagonal cell
    expect(page.get_by_text(re.compile(r"Diagonal cells are correct readings: [\d,]+ test images of digit "
                                       r"3 were read as 3\."))).to_be_visible()
    expect(filter_note).to_have_count(0)
    expect(outlined).to_have_count(0)

    def figures(pattern):  # what the first cards say, in the order shown
        return [float(re.search(pattern, text).group(1)) for text in shown.all_inner_texts()[:20]]
    sure = figures(r"→ \d (\d+\.\d\d)%")
    assert len(sure) == 20 and sure == sorted(sure, reverse=True), sure  # the surest mistakes first
    browse.get_by_text("loss", exact=True).click()  # sort by loss
    expect(page.get_by_text(re.compile("Loss: −log of the probability the run gave the true digit"))) \
        .to_be_visible()
    expect(shown.first).to_contain_text(re.compile(r"→ \d loss \d+\.\d\d"))
    losses = figures(r"loss (\d+\.\d\d)")
    assert len(losses) == 20 and losses == sorted(losses, reverse=True), losses
    chart_cell(page, page.get_by_test_id("stEChartsChart").first, column=9, row=4)
    expect(filter_note).to_be_visible()
    copied = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    copied.goto(page.url)  # a copied link: the same mistakes, in the same order
    expect(copied.get_by_text(re.compile(r"Showing \d+ mistakes: true 4, predicted 9\."))).to_be_visible()
    expect(copied.locator("[data-mistake]").first).to_contain_text(re.compile(r"4 → 9 loss \d+\.\d\d"))
    no_exception(copied)
    copied.context.close()
    no_exception(page)


def query(page) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(urlparse(page.url).query).items()}


def test_back_and_forward_undo_and_redo_each_change_one_press_each(page, server):
    open_page(page, server, "errors", "Misclassified test images")
    chart = page.get_by_test_id("stEChartsChart").first
    expect(chart.get_by_text("1003", exact=True)).to_be_visible()
    entries = page.evaluate("history.length")  # the page itself adds none
    filter_note = page.get_by_text(re.compile(r"Showing \d+ mistakes: true 4, predicted 9\."))
    loss_note = page.get_by_text(re.compile("Loss: −log of the probability the run gave the true digit"))
    chart_cell(page, chart, column=9, row=4)  # change 1: a cell
    expect(filter_note).to_be_visible()
    page.get_by_role("tabpanel").first.get_by_text("loss", exact=True).click()  # change 2: the order
    expect(loss_note).to_be_visible()
    page.wait_for_function("() => new URLSearchParams(location.search).get('sort') === 'loss'")
    assert page.evaluate("history.length") == entries + 2  # one entry per change
    assert query(page) == {"true": "4", "predicted": "9", "sort": "loss"}
    page.go_back()  # undoes the order, keeps the cell
    expect(loss_note).to_have_count(0)
    expect(filter_note).to_be_visible()
    expect(page.get_by_role("radio", name="confidence")).to_be_checked()
    assert query(page) == {"true": "4", "predicted": "9"}
    page.go_back()  # undoes the cell
    expect(filter_note).to_have_count(0)
    expect(page.get_by_role("combobox", name="True digit")).to_have_value("any")
    assert query(page) == {}
    page.go_forward()  # and Forward redoes it
    expect(filter_note).to_be_visible()
    page.go_forward()
    expect(loss_note).to_be_visible()
    assert query(page) == {"true": "4", "predicted": "9", "sort": "loss"}
    page.wait_for_timeout(1000)
    assert page.evaluate("history.length") == entries + 2  # going back and forth added nothing
    open_page(page, server, "lambda_sweep", "L2 regularization sweep")  # and on a sweep page
    epochs = page.get_by_role("slider", name="Epochs")
    before = epochs.get_attribute("aria-valuetext")
    epochs.press("ArrowLeft")
    page.wait_for_function("() => new URLSearchParams(location.search).get('epochs')")
    page.go_back()
    expect(epochs).to_have_attribute("aria-valuetext", before)
    assert "epochs" not in query(page)
    no_exception(page)


def test_every_choice_on_overview_and_suspect_labels_is_in_the_url(page, server):
    open_page(page, server, "", "MNIST lab")
    choose(page, page.get_by_test_id("stSelectbox").first, re.compile(r"^improved_cnn: "))
    page.wait_for_function("() => new URLSearchParams(location.search).get('run')")
    diagram = page.get_by_role("combobox", name="Reliability diagram of")
    choose(page, page.get_by_test_id("stSelectbox").filter(has=diagram), "improved_cnn")
    page.wait_for_function("() => new URLSearchParams(location.search).get('diagram') === 'improved_cnn'")
    page.reload()  # both choices come back
    expect(run_box(page)).to_have_value(re.compile("^improved_cnn: "))
    expect(diagram).to_have_value("improved_cnn")
    page.go_back()  # the diagram's change undone, the run's kept
    expect(diagram).to_have_value("baseline_mlp")
    expect(run_box(page)).to_have_value(re.compile("^improved_cnn: "))
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Errors").click()
    expect(run_box(page)).to_have_value(re.compile("^improved_cnn: "))  # Errors has the run too
    page.get_by_role("tab", name="Suspect labels").click()
    all_vote = page.get_by_role("button", name=re.compile(r"^All \d+ runs vote$"))
    all_vote.click()
    expect(all_vote).to_be_disabled()
    page.get_by_text("Flagged only", exact=True).click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('show') === 'Flagged only'")
    voters = query(page)["voters"].split(",")
    assert len(voters) == int(re.search(r"\d+", all_vote.inner_text()).group()) and query(page)["tab"]
    fresh = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    fresh.goto(page.url)  # a copied link: the same voters and filter
    expect(fresh.get_by_role("button", name=re.compile(r"^All \d+ runs vote$"))).to_be_disabled()
    expect(fresh.get_by_role("radio", name="Flagged only")).to_be_checked()
    no_exception(fresh)
    fresh.context.close()
    no_exception(page)


def selected_key(page) -> str | None:
    return parse_qs(urlparse(page.url).query).get("run", [None])[0]


def run_box(page):
    return page.get_by_role("combobox", name="Run", exact=True)


def test_the_selected_run_survives_navigation_and_reload(page, server):
    open_page(page, server, "errors", "Misclassified test images")
    choose(page, page.get_by_test_id("stSelectbox").first, re.compile(r"^reference_cnn: "))
    expect(run_box(page)).to_have_value(re.compile("^reference_cnn: "))
    page.wait_for_function("() => new URLSearchParams(location.search).get('run')")
    key = selected_key(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="MNIST lab")).to_be_visible()
    page.wait_for_function("() => new URLSearchParams(location.search).get('run')")
    assert selected_key(page) == key  # the switch kept it in the URL
    page.reload()
    expect(run_box(page)).to_have_value(re.compile("^reference_cnn: "))
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Errors").click()
    expect(run_box(page)).to_have_value(re.compile("^reference_cnn: "))
    copied = page.url
    fresh = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    fresh.goto(copied)  # a shared link selects it too
    expect(run_box(fresh)).to_have_value(re.compile("^reference_cnn: "))
    fresh.context.close()


def test_a_mistyped_grid_says_what_is_accepted_and_keeps_the_chart(page, server):
    open_page(page, server, "width_sweep", "Width sweep")
    page.get_by_text("Explicit pairs").click()
    pairs = page.get_by_label("Pairs layer1:layer2, comma-separated", exact=True)
    pairs.fill("25-10")
    pairs.press("Enter")
    accepted = page.get_by_text(re.compile("give widths as pairs like 25:10, separated by commas"))
    expect(accepted).to_have_count(2)  # beside the input, and in the main area
    expect(page.get_by_test_id("stSidebar").get_by_text(re.compile("pairs like 25:10"))).to_be_visible()
    expect(page.get_by_text(re.compile("Showing the last grid that was valid"))).to_be_visible()
    expect(page.get_by_test_id("stEChartsChart")).to_have_count(1)
    expect(page.get_by_text("could not convert")).to_have_count(0)
    expect(page.get_by_text("invalid literal")).to_have_count(0)
    pairs.fill("25:10, 100:40")
    pairs.press("Enter")
    expect(accepted).to_have_count(0)
    no_exception(page)


def test_a_tap_or_a_small_zigzag_asks_for_a_bigger_digit_and_the_edit_toggle_is_hidden(page, server):
    open_page(page, server, "draw", "Draw a digit")
    canvas = page.locator("canvas.upper-canvas").first
    settled(canvas)
    drawn(page, canvas, [(140, 140), (142, 141)])
    expect(page.get_by_text(re.compile(r"Draw a bigger digit: this drawing reaches \d+% of the canvas"))) \
        .to_be_visible()
    expect(page.locator("[data-model]")).to_have_count(0)  # no model's reading of a dot
    canvas = clear(page)
    # 25x27 px with the default 20 px pen: about 47 px of ink, but a digit's reach is net of its pen
    draw_strokes(page, canvas, [[(130, 130), (155, 135), (130, 145), (155, 157)]])
    expect(page.get_by_text(re.compile(r"Draw a bigger digit: this drawing reaches \d+% of the canvas "
                                       r"beyond the pen's own width"))).to_be_visible()
    expect(page.locator("[data-model]")).to_have_count(0)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    expect(page.get_by_role("button", name="Undo")).to_be_visible()
    expect(page.get_by_role("button", name="Edit")).to_be_hidden()
    expect(page.get_by_role("button", name="Update the app with this drawing")).to_be_hidden()
    slider = page.get_by_role("radiogroup", name="Stroke width").bounding_box()
    toolbar = page.get_by_role("button", name="Undo").bounding_box()
    assert toolbar["y"] + toolbar["height"] <= slider["y"] or toolbar["y"] >= slider["y"] + slider["height"]
    no_exception(page)


SCRIBBLE = [[(70, 80), (200, 60), (90, 200), (210, 150), (60, 120), (180, 230), (150, 50), (80, 170)]]
TIE = [[(80, 90), (140, 40), (140, 240)]]  # a 1 with a long flag: both MLPs read 7, both CNNs 1


def test_a_scribble_is_not_a_digit_a_7_after_clear_is_read_and_a_2_2_split_is_a_tie(page, server):
    open_page(page, server, "draw", "Draw a digit")
    canvas = page.locator("canvas.upper-canvas").first
    draw_strokes(page, canvas, SCRIBBLE)
    expect(page.get_by_text("This does not look like a digit to the models.")).to_be_visible()
    expect(page.get_by_text(re.compile("Not a digit, to the models"))).to_be_visible()  # under the canvas
    expect(page.locator("[data-model]")).to_have_count(4)  # their guesses stay, greyed
    expect(page.get_by_text("The models disagree")).to_have_count(0)
    draw(page, clear(page), 7)
    expect(page.locator('[data-model="improved_cnn"]').get_by_test_id("predicted-digit")).to_have_text("7")
    expect(page.get_by_text("This does not look like a digit to the models.")).to_have_count(0)
    expect(page.get_by_text(re.compile("Percentages are calibrated"))).to_be_visible()
    draw_strokes(page, clear(page), TIE)  # a 2-2 split is a tie
    expect(page.get_by_text("The models split evenly: reference_cnn and improved_cnn read 1; "
                            "baseline_mlp and best_width_mlp read 7.")).to_be_visible()
    expect(page.get_by_text("differ from the majority")).to_have_count(0)
    outlined = page.locator("[data-model]").evaluate_all(
        "els => els.filter(e => getComputedStyle(e).borderTopColor === 'rgb(214, 39, 40)').length")
    assert outlined == 0
    expect(page.get_by_text(re.compile("The models split: 2 read 1, 2 read 7"))).to_be_visible()
    no_exception(page)


def sweep_axis(page) -> list[str]:
    chart = page.get_by_test_id("stEChartsChart").first
    expect(chart.locator("svg text").first).to_be_visible()
    return x_axis_labels(chart, SWEEP_GRID)


def test_sweep_axes_label_every_grid_point(page, server):
    open_page(page, server, "lambda_sweep", "L2 regularization sweep")
    assert sweep_axis(page) == ["0", "0.001", "0.003", "0.01", "0.05", "0.1", "0.2", "0.3"]
    open_page(page, server, "width_sweep", "Width sweep")
    assert sweep_axis(page) == ["10/5", "10/8", "15/10", "25/10", "40/15", "60/20", "100/40", "150/60",
                                "300/120", "600/240", "1200/480"]
    page.get_by_text("Table of runs").click()
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    no_exception(page)


def test_overview_table_fits_and_the_curves_differ_in_colour(page, server):
    open_page(page, server, "", "MNIST lab")
    cell = page.get_by_text("96.24% ± 0.03% (3 seeds)")
    expect(cell).to_be_visible()
    for text in ("96.24% ± 0.03% (3 seeds)", "train accuracy", "training time"):
        box = page.get_by_text(text, exact=True).first.bounding_box()
        assert box["x"] + box["width"] <= 1400, f"{text!r} is cut off"
    charts = page.get_by_test_id("stEChartsChart")
    expect(charts).to_have_count(3)  # loss, accuracy, and the reliability diagram
    for chart in charts.all()[:2]:  # a train curve and a validation curve, in two colours
        expect(chart.locator('svg path[fill="none"][stroke="#1f77b4"]')).to_have_count(1)
        expect(chart.locator('svg path[fill="none"][stroke="#d62728"]')).to_have_count(1)
        expect(chart.get_by_text("validation", exact=False).first).to_be_visible()
    reliability = charts.nth(2)
    reliability.scroll_into_view_if_needed()
    expect(reliability.get_by_text("baseline_mlp: accuracy against confidence")).to_be_visible()
    after = re.compile(r"after scaling, T = \d\.\d\d \(ECE 0\.\d\d%\)")
    expect(reliability.get_by_text(after)).to_be_visible()
    expect(reliability.locator('svg path[fill="none"][stroke="#1f77b4"]')).to_have_count(1)  # after
    expect(reliability.locator('svg path[fill="none"][stroke="#d62728"]')).to_have_count(1)  # as given
    choose(page, page.get_by_test_id("stSelectbox").filter(has_text="Reliability diagram of"), "improved_cnn")
    reliability = page.get_by_test_id("stEChartsChart").nth(2)
    expect(reliability.get_by_text("improved_cnn: accuracy against confidence")).to_be_visible()
    expect(reliability.get_by_text(after)).to_be_visible()
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
    no_exception(page)


def test_compare_shows_both_runs_predictions_for_errors_both_make(page, server):
    open_page(page, server, "errors", "Misclassified test images")
    page.get_by_role("tab", name="Compare two runs").click()
    page.get_by_role("radiogroup", name="Show").get_by_text("both").click()
    page.reload()  # the tab is in the URL
    expect(page.get_by_role("tab", name="Compare two runs")).to_have_attribute("aria-selected", "true")
    page.get_by_role("radiogroup", name="Show").get_by_text("both").click()
    both = page.locator("[data-mistake]").filter(has_text="A: ").first
    expect(both).to_contain_text(re.compile(r"true \d\s*A: \d \(\d+%\) B: \d \(\d+%\)"))
    expect(page.get_by_text("Each image: its true digit, then what A and B read")).to_be_visible()
    no_exception(page)


@pytest.fixture
def mnist_mirror(tmp_path):
    if not SHARED_MNIST.is_file():
        pytest.skip(f"no local MNIST to serve at {SHARED_MNIST}")
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copy(SHARED_MNIST, folder / "mnist.npz")
    with file_server(folder) as url:
        yield url + "/mnist.npz"


def ask_for_an_unstored_lambda(browser, url):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_page(page, url, "lambda_sweep", "L2 regularization sweep")
    page.get_by_text("Explicit values").click()
    values = page.get_by_label("Lambdas, comma-separated", exact=True)
    values.fill("0.0005")
    values.press("Enter")
    return page


def test_without_mnist_the_sweep_page_gets_it_and_then_offers_training(browser, tmp_path, mnist_mirror):
    import hashlib

    sha256 = hashlib.sha256(SHARED_MNIST.read_bytes()).hexdigest()
    env = {"MNIST_PATH": None, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "MNIST_LAB_DOWNLOAD_URL": mnist_mirror, "MNIST_LAB_DOWNLOAD_SHA256": sha256}
    with streamlit_server(tmp_path / "store", tmp_path / "streamlit.log", env) as url:
        page = ask_for_an_unstored_lambda(browser, url)
        expect(page.get_by_text(re.compile("MNIST is not on this machine"))).to_be_visible()
        page.get_by_role("button", name="Get MNIST (11 MB)").click()
        expect(page.get_by_role("button", name=re.compile("Train 3 missing"))).to_be_visible()
        assert (tmp_path / "data" / "mnist-lab" / "mnist.npz").is_file()
        no_exception(page)
        page.context.close()


def test_a_download_that_fails_its_check_says_so_and_leaves_nothing(browser, tmp_path, mnist_mirror):
    env = {"MNIST_PATH": None, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "MNIST_LAB_DOWNLOAD_URL": mnist_mirror, "MNIST_LAB_DOWNLOAD_SHA256": "0" * 64}
    with streamlit_server(tmp_path / "store", tmp_path / "streamlit.log", env) as url:
        page = ask_for_an_unstored_lambda(browser, url)
        page.get_by_role("button", name="Get MNIST (11 MB)").click()
        expect(page.get_by_text(re.compile("MNIST could not be downloaded: .*sha256"))).to_be_visible()
        expect(page.get_by_role("button", name="Get MNIST (11 MB)")).to_be_visible()
        folder = tmp_path / "data" / "mnist-lab"
        assert not folder.exists() or list(folder.iterdir()) == []
        no_exception(page)
        page.context.close()



def test_clicking_a_sweep_point_selects_its_run_for_the_other_pages(page, server):
    open_page(page, server, "lambda_sweep", "L2 regularization sweep")
    chart = page.get_by_test_id("stEChartsChart").first
    markers = chart.locator('svg path[fill="#d62728"][stroke="#fff"]')  # one test-error marker per run
    expect(markers).to_have_count(24)
    box = markers.last.bounding_box()  # one of the last λ's, drawn on top
    assert chart_box(chart)["x"] < box["x"]
    click_at(page, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    selected = page.get_by_text(re.compile(r"Selected: MLP 25-15 λ=[\d.]+, 60 ep, seed \d"))
    expect(selected).to_be_visible()
    page.wait_for_function("() => new URLSearchParams(location.search).get('run')")
    label = re.search(r"λ=([\d.]+), 60 ep, seed (\d)", selected.inner_text())
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Draw").click()
    expect(page.get_by_text(re.compile(rf"selected: MLP 25-15 λ={label[1]}, 60 ep, seed {label[2]}"))) \
        .to_be_visible()
    no_exception(page)


def test_suspect_labels_filter_record_a_verdict_that_survives_reload_and_export(page, server, tmp_path):
    def open_suspects():
        open_page(page, server, "errors", "Misclassified test images")
        page.get_by_role("tab", name="Suspect labels").click()
        expect(page.locator("[data-suspect]").first).to_be_visible()

    def choose_in(label, option):
        choose(page, page.get_by_test_id("stSelectbox").filter(has_text=label), option)

    def verdict(index, word):
        group = page.get_by_role("radiogroup", name=f"Verdict on test image {index}")
        return group.get_by_role("radio", name=word)

    open_suspects()
    first = page.locator("[data-suspect]").first
    expect(first).to_have_attribute("data-suspect", "9729")  # given 5, every voter reads 6
    expect(first).to_contain_text("given 5 → suggested 6")
    expect(first).to_have_attribute("title", re.compile(r"improved_cnn: 6 \(\d+\.\d%\)"))
    choose_in("Given label", "2")
    expect(page.locator("[data-suspect]").first).to_have_attribute("data-given", "2")
    expect(page.locator('[data-suspect]:not([data-given="2"])')).to_have_count(0)
    top = page.locator("[data-suspect]").first.get_attribute("data-suspect")
    verdict(top, "wrong").click()
    expect(page.get_by_text("1 with a verdict")).to_be_visible()
    expect(page.get_by_text("without the 1 marked")).to_be_visible()  # accuracy with it set aside
    card = page.locator(f'[data-suspect="{top}"]')
    misread = re.search(r"improved_cnn: (\d)", card.get_attribute("title")).group(1)
    assert misread != "2", "the top suspect labelled 2 should be one the improved CNN reads otherwise"
    cells = page.get_by_test_id("stTable").locator("tr").filter(has_text="improved_cnn").locator("td")
    standard, without = (float(text.rstrip("%")) for text in cells.all_inner_texts()[-2:])
    assert without > standard, (standard, without)  # one of its "mistakes" no longer counts

    page.reload()
    open_suspects()
    page.get_by_text("With a verdict", exact=True).click()
    expect(page.locator("[data-suspect]")).to_have_count(1)
    expect(verdict(top, "wrong")).to_have_attribute("aria-checked", "true")
    with page.expect_download() as download:
        page.get_by_role("button", name=re.compile(r"Export verdicts as CSV \(1\)")).click()
    saved = tmp_path / "verdicts.csv"
    download.value.save_as(saved)
    given, suggested = (page.locator(f'[data-suspect="{top}"]').get_attribute(a) for a in ("data-given",
                                                                                           "data-suggested"))
    assert saved.read_text().splitlines() == ["index,given,suggested,verdict",
                                              f"{top},{given},{suggested},label wrong"]
    no_exception(page)


def test_every_stored_run_can_vote_on_suspect_labels_at_once(page, server):
    open_page(page, server, "errors", "Misclassified test images")
    page.get_by_role("tab", name="Suspect labels").click()
    expect(page.locator("[data-suspect]").first).to_have_attribute("data-suspect", "9729")
    expect(run_box(page)).to_have_count(0)  # the voters are this tab's runs: no run box that does nothing
    flagged = page.get_by_text(re.compile(r"(\d+) of 10,000 labels flagged by confident learning"))
    by_default = int(re.match(r"\d+", flagged.inner_text()).group())
    everyone = page.get_by_role("button", name=re.compile(r"All \d+ runs vote"))
    runs = int(re.search(r"All (\d+) runs", everyone.inner_text()).group(1))
    assert runs >= 62  # the committed runs at least
    everyone.click()
    expect(everyone).to_be_disabled()
    expect(flagged).to_be_visible()
    if int(re.match(r"\d+", flagged.inner_text()).group()) < by_default:  # more voters, fewer flags: why
        expect(page.get_by_text(re.compile(rf"These voters flag \d+, the default \d+ flag {by_default}: "
                                           r"the voters' probabilities are averaged"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Voting runs: \d+ chosen"))).to_be_visible()  # chips folded away
    expect(page.get_by_text("cannot vote together")).to_have_count(0)
    first = page.locator("[data-suspect]").first
    expect(first).to_have_attribute("title", re.compile(r"MLP \d+-\d+ λ=.*seed"))  # the runs' votes
    expect(page.locator("[data-suspect]")).to_have_count(12)
    votes = first.get_attribute("title")
    assert votes.count(":") >= runs  # every run's reading of it, on hover
    expect(everyone).to_be_disabled()
    page.get_by_role("button", name=re.compile(r"The default \d+")).click()
    expect(page.locator("[data-suspect]").first).to_have_attribute("data-suspect", "9729")
    no_exception(page)


def test_a_selected_point_stays_that_run_when_the_grid_changes(page, server):
    open_page(page, server, "lambda_sweep", "L2 regularization sweep")
    chart = page.get_by_test_id("stEChartsChart").first
    train = chart.locator('svg path[fill="#1f77b4"][stroke="#fff"]')  # runs in order: λ, then seed
    expect(train).to_have_count(24)
    box = train.nth(5).bounding_box()  # λ = 0.001, seed 2: drawn over seeds 0 and 1
    click_at(page, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    chosen = page.get_by_text("Selected: MLP 25-15 λ=0.001, 60 ep, seed 2")
    expect(chosen).to_be_visible()
    thumb = page.get_by_role("slider", name="Seeds")
    thumb.focus()
    thumb.press("Home")  # one seed: the chart now has 8 runs, and its 6th marker is another run
    expect(page.get_by_text(re.compile(r"8 of 8 runs stored"))).to_be_visible()
    expect(train).to_have_count(8)
    expect(chosen).to_be_visible()
    no_exception(page)


def test_a_clicked_sweep_marker_outlines_only_its_run_and_still_does_after_a_reload(page, server):
    open_page(page, server, "lambda_sweep", "L2 regularization sweep")
    chart = page.get_by_test_id("stEChartsChart").first
    train = chart.locator('svg path[fill="#1f77b4"][stroke="#fff"]')  # runs in order: λ, then seed
    expect(train).to_have_count(24)
    boxes = [train.nth(i).bounding_box() for i in range(3)]  # λ = 0, seeds 0, 1, 2: side by side
    centres = [b["x"] + b["width"] / 2 for b in boxes]
    assert centres[0] < boxes[1]["x"] and boxes[1]["x"] + boxes[1]["width"] < centres[2]  # each centre clear
    box = train.nth(5).bounding_box()  # λ = 0.001, seed 2
    click_at(page, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_text("Selected: MLP 25-15 λ=0.001, 60 ep, seed 2")).to_be_visible()
    outlined = chart.locator('svg path[stroke="#000"]')
    expect(outlined).to_have_count(2)  # its train and its test marker, no other seed's
    page.reload()
    expect(page.get_by_text("Selected: MLP 25-15 λ=0.001, 60 ep, seed 2")).to_be_visible()
    expect(page.get_by_test_id("stEChartsChart").first.locator('svg path[stroke="#000"]')).to_have_count(2)
    lowest = page.get_by_test_id("stEChartsChart").first.locator('svg path[fill="#1f77b4"][stroke="#fff"]')
    box = lowest.nth(0).bounding_box()  # λ = 0, seed 0: once hidden under seed 1's marker
    click_at(page, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_text("Selected: MLP 25-15 λ=0, 60 ep, seed 0")).to_be_visible()
    no_exception(page)


def test_a_click_on_a_grid_cell_selects_its_run_on_every_page_and_back_brings_it_again(page, server):
    open_page(page, server, "grid", "λ × width grid")
    chart = page.get_by_test_id("stEChartsChart").first
    expect(chart.locator("svg text").filter(has_text=re.compile(r"^\d+\.\d\d%$"))).to_have_count(20)
    # the committed grid: widths 25/15 100/40 250/100 600/240 left to right, λ rising upwards
    chart_cell(page, chart, column=1, row=3, columns=4, rows=5, grid=HEATMAP_GRID)  # 100/40, λ = 0.001
    selected = page.get_by_text("Selected: MLP 100-40 λ=0.001, 60 ep, seed 0")
    expect(selected).to_be_visible()
    expect(chart.locator('svg path[stroke="#000"]')).to_have_count(1)  # its cell outlined, no other
    key, entries = query(page)["run"], page.evaluate("history.length")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Errors").click()
    expect(page.get_by_role("heading", name="Misclassified test images")).to_be_visible()
    expect(page.get_by_role("combobox", name="Run")).to_have_value(re.compile(r"^MLP 100-40 λ=0\.001, 60 ep"))
    assert query(page)["run"] == key
    page.wait_for_timeout(1000)
    assert page.evaluate("history.length") == entries + 1  # the switch is one entry, with its run
    page.go_back()  # one press: the grid again, its cell still selected
    expect(page.get_by_role("heading", name="λ × width grid")).to_be_visible()
    expect(selected).to_be_visible()
    no_exception(page)


# Elements of the page (not the shapes inside a chart's SVG, which the chart clips) reaching past
# the right edge of the screen.
OVERFLOW = """() => { const W = window.innerWidth;
  const main = document.querySelector('[data-testid=stMain]');
  const scrolledWithin = el => {  // inside a box that fits and scrolls or clips its content (a table)
    for (let p = el.parentElement; p && p !== main; p = p.parentElement)
      if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(p).overflowX) &&
          p.getBoundingClientRect().right <= W + 1) return true;
    return false; };
  const wide = [...document.querySelectorAll('[data-testid=stMain] *')].filter(el => {
    const r = el.getBoundingClientRect();
    return !(el instanceof SVGElement) && r.width > 0 && r.right > W + 1 && !scrolledWithin(el); });
  return {page: document.documentElement.scrollWidth, main: main.scrollWidth, width: W,
          wide: wide.slice(0, 5).map(el => el.tagName + ' ' + (el.getAttribute('data-testid') || ''))}; }"""


def test_no_page_fetches_anything_from_outside_the_server(browser, server):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    outside = []
    page.on("request", lambda request: outside.append(request.url)
            if not request.url.startswith((server, "data:", "blob:")) else None)
    for path, heading in (("", "MNIST lab"), ("lambda_sweep", "L2 regularization sweep"),
                          ("width_sweep", "Width sweep"), ("grid", "λ × width grid"),
                          ("errors", "Misclassified test images"),
                          ("draw", "Draw a digit")):
        open_page(page, server, path, heading)
        page.wait_for_load_state("networkidle")  # fonts and icons fetched while the page draws
    assert outside == []  # an icon from Google's font servers was fetched here once
    page.context.close()


def test_on_a_phone_no_page_is_wider_than_the_screen_and_the_reading_sits_under_the_canvas(browser, server):
    phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    for path, heading in (("", "MNIST lab"), ("lambda_sweep", "L2 regularization sweep"),
                          ("width_sweep", "Width sweep"), ("grid", "λ × width grid"),
                          ("errors", "Misclassified test images"),
                          ("runs", "Every stored run"), ("draw", "Draw a digit")):
        open_page(phone, server, path, heading)
        if path == "draw":
            canvas = phone.locator("canvas.upper-canvas").first
            draw(phone, canvas, 3)
            summary = phone.get_by_test_id("reading-summary")
            expect(summary).to_contain_text(re.compile(r"Read as 3|read 3"))
            expect(summary).to_be_in_viewport()  # no scroll between a stroke and its reading
            expect(phone.locator("[data-model]").first).to_be_visible()
            sizes = phone.evaluate(OVERFLOW)
            assert sizes["page"] <= 390 and sizes["main"] <= 390 and not sizes["wide"], (path, sizes)
            draw_strokes(phone, clear(phone), SCRIBBLE)  # the not-a-digit banner fits the phone too
            expect(summary).to_contain_text("Not a digit")
            expect(summary).to_be_in_viewport()
            expect(phone.get_by_text("This does not look like a digit to the models.")).to_be_visible()
        settled(phone.get_by_test_id("stMain"))  # charts drawn: the layout no longer moves
        sizes = phone.evaluate(OVERFLOW)
        assert sizes["page"] <= 390 and sizes["main"] <= 390 and not sizes["wide"], (path, sizes)
        for chart in phone.get_by_test_id("stEChartsChart").all():
            chart.scroll_into_view_if_needed()
            assert chart.locator("svg text").count() > 10, path  # drawn
            assert chart_text_clashes(chart) == [], path  # every label, legend and title readable
    phone.context.close()


def test_a_request_over_the_job_limits_shows_why_and_no_train_button(page, server):
    open_page(page, server, "lambda_sweep", "L2 regularization sweep")
    page.get_by_text("Log range").click()
    points = page.get_by_role("slider", name="Points in range")
    points.focus()
    points.press("End")  # 12 points and λ = 0, three seeds: 39 runs
    # each change is in the address before the next, as a person's are (a loaded machine is slow)
    page.wait_for_function("() => new URLSearchParams(location.search).get('points') === '12'")
    epochs = page.get_by_role("slider", name="Epochs")
    epochs.focus()
    epochs.press("Home")
    expect(page.get_by_text(re.compile(r"0 of 39 runs stored · 1 epoch"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"a job may train at most 24 runs, this one asks for 39\. "
                                       r"Ask for less"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Train"))).to_have_count(0)
    no_exception(page)


def tick_row(page, row: int, ticked: int) -> None:
    """Choose a row's tick box in the Runs table with the mouse, once the table has settled, and
    press space, as a person does; then see `ticked` runs ticked. The table is a canvas drawn after
    the page: a click it was not yet ready for is made again, as a person would."""
    for _ in range(2):
        wait_until_idle(page)
        table = page.get_by_test_id("stDataFrame").first
        table.scroll_into_view_if_needed()
        settled(table)
        page.wait_for_timeout(1000)
        box = table.bounding_box()
        click_at(page, box["x"] + 30, box["y"] + 35 * (row + 1.5))  # under a 35 px header, rows of 35 px
        page.keyboard.press("Space")
        said = page.get_by_text(re.compile(rf"· {ticked} of at most 6 ticked"))
        try:
            expect(said).to_be_visible(timeout=15_000)
            return
        except AssertionError:
            continue
    raise AssertionError(f"row {row} could not be ticked")


def test_the_runs_page_filters_sorts_ticks_by_keyboard_and_compares(page, server):
    open_page(page, server, "runs", "Every stored run")
    shown = page.get_by_text(re.compile(r"^Showing (\d+) of (\d+) runs"))
    total = int(re.search(r"of (\d+) runs", shown.inner_text()).group(1))
    assert total >= 62 and f"Showing {total} of {total}" in shown.inner_text()
    find = page.get_by_label("Find")
    find.fill("MLP 25-15 λ=0.01,")
    find.press("Enter")
    expect(shown).not_to_contain_text(f"Showing {total} of")
    expect(shown).to_contain_text(re.compile(rf"^Showing [1-9]\d* of {total} runs"))
    choose(page, page.get_by_test_id("stSelectbox").filter(has_text="Sort by"), "seed")
    page.get_by_text("lowest first", exact=True).click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('order') === 'lowest first'")
    tick_row(page, 0, ticked=1)  # the first row's tick box, chosen with the mouse, ticked from the keyboard
    expect(page.get_by_role("heading", name="1 run compared")).to_be_visible()
    page.wait_for_function("() => new URLSearchParams(location.search).get('compare')")
    first = query(page)["compare"]
    assert query(page)["run"].startswith(first)  # and it is the selected run everywhere
    tick_row(page, 1, ticked=2)
    expect(page.get_by_role("heading", name="2 runs compared")).to_be_visible()
    loss = page.get_by_test_id("stEChartsChart").first
    curves = loss.locator("svg text").filter(has_text=re.compile(r"^MLP .* · [0-9a-f]{6}$"))
    expect(curves).to_have_count(2)  # both runs in the legend
    expect(page.get_by_text("What differs in their configs")).to_be_visible()
    compared = query(page)["compare"].split(",")
    assert len(compared) == 2 and compared[0] == first
    page.reload()  # the ticks, the filter and the order come back
    expect(page.get_by_role("heading", name="2 runs compared")).to_be_visible()
    expect(find).to_have_value("MLP 25-15 λ=0.01,")
    second = compared[1]
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Errors").click()
    expect(run_box(page)).to_have_value(re.compile(rf"· {second[:6]}$"))  # the last ticked, selected there
    no_exception(page)
