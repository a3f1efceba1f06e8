"""The charts' options (what is drawn, what a click means) and the Draw page's readout."""

import base64
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mnist_core.reading.predict import disagreements
from pages.parts.charts import (
    GRID_CELLS,
    clicked_cell,
    clicked_cell_run,
    clicked_run,
    confusion_chart,
    drawing_invitation,
    drawing_readout,
    grid_cells,
    grid_chart,
    history_chart,
    reading_summary,
    sweep_chart,
    with_article,
)


def probabilities(top: int, sure: float) -> np.ndarray:
    probs = np.full(10, (1 - sure) / 9)
    probs[top] = sure
    return probs


def test_readout_shows_each_models_digit_and_outlines_the_ones_that_disagree():
    image = np.zeros((28, 28), np.float32)
    image[4:24, 12:16] = 1.0
    readout = drawing_readout(image, {"a": probabilities(1, 0.9), "b": probabilities(1, 0.8),
                                      "c": probabilities(7, 0.6)},
                              {"a": False, "b": False, "c": True}, strokes=1)
    digits = re.findall(r'data-testid="predicted-digit"[^>]*>(\d)<', readout)
    assert digits == ["1", "1", "7"]
    assert "90.0% sure" in readout and "60.0% sure" in readout
    rows = re.findall(r'<div data-model="(\w)" style="border:([^;]*);', readout)
    assert rows == [("a", "1px solid #ddd"), ("b", "1px solid #ddd"), ("c", "2px solid #d62728")]
    assert "The models disagree" in readout
    assert "Read after 1 stroke." in readout


def test_a_tie_is_said_as_a_tie_naming_who_read_what_and_no_model_is_outlined():
    image = np.zeros((28, 28), np.float32)
    image[4:24, 12:16] = 1.0
    readings = {"mlp_a": probabilities(7, 0.9), "mlp_b": probabilities(7, 0.8),
                "cnn_a": probabilities(1, 0.9), "cnn_b": probabilities(1, 0.7)}
    flags = disagreements(readings)
    assert not any(flags.values())
    readout = drawing_readout(image, readings, flags, strokes=1)
    assert "differ from the majority" not in readout
    assert ("The models split evenly: <b>cnn_a</b> and <b>cnn_b</b> read 1; <b>mlp_a</b> and "
            "<b>mlp_b</b> read 7.") in readout
    assert "2px solid #d62728" not in readout
    assert "The models split: 2 read <b>1</b>, 2 read <b>7</b>." in reading_summary(readings)


def test_digits_take_their_article():
    assert [with_article(d) for d in (0, 1, 4, 8, 9)] == ["a 0", "a 1", "a 4", "an 8", "a 9"]


def test_readout_without_disagreement_counts_strokes_and_escapes_names():
    readout = drawing_readout(np.zeros((28, 28), np.float32), {"<b>x</b>": probabilities(3, 0.99)},
                              {"<b>x</b>": False}, strokes=3)
    assert "The models disagree" not in readout
    assert "Read after 3 strokes." in readout
    assert "<b>x</b>" not in readout and "&lt;b&gt;x&lt;/b&gt;" in readout


def test_readout_shows_the_models_input_pixel_for_pixel():
    image = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    readout = drawing_readout(image, {"a": probabilities(0, 0.5)}, {"a": False}, strokes=1)
    encoded = re.search(r'src="data:image/png;base64,([^"]+)"', readout).group(1)
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
    assert shown.shape == (28, 28)
    assert np.abs(shown / 255.0 - image).max() <= 1 / 255


def test_invitation_names_the_models_that_will_read_the_drawing():
    invitation = drawing_invitation(["baseline_mlp", "selected: <MLP 25-15>"])
    assert "Draw a digit on the black canvas" in invitation
    assert "<b>baseline_mlp</b>, <b>selected: &lt;MLP 25-15&gt;</b>" in invitation


def sweep_frame() -> pd.DataFrame:
    rows = [{"l2": l2, "seed": seed, "key": f"{l2:g}-{seed}", "train_error": 0.01 + l2 + seed / 1000,
             "test_error": 0.03 + l2 + seed / 1000}
            for l2 in (0.3, 0.0, 0.001, 0.05) for seed in (2, 0, 1)]
    return pd.DataFrame(rows)


def test_sweep_chart_labels_every_grid_value_in_order_and_is_plain_json():
    option = sweep_chart(sweep_frame(), "l2", "l2", "lambda")
    assert option["xAxis"][0]["data"] == ["0", "0.001", "0.05", "0.3"]
    assert option["xAxis"][0]["axisLabel"]["interval"] == 0  # none hidden to avoid overlap
    json.dumps(option)  # numpy numbers would not reach the browser
    means = [s for s in option["series"] if s.get("name") == "test error (mean of seeds)"][0]["data"]
    assert [round(point[1], 6) for point in means] == [0.031, 0.032, 0.081, 0.331]
    low, span = [s["data"] for s in option["series"][3:5]]  # the test error's band: min, max - min
    assert [round(y, 6) for _, y in low] == [0.03, 0.031, 0.08, 0.33]
    assert [round(y, 6) for _, y in span] == [0.002] * 4


def test_width_chart_orders_pairs_by_neurons_and_names_them_like_600_240():
    frame = pd.DataFrame({"hidden": ["600/240", "10/5", "100/40"], "neurons": [840, 15, 140], "seed": 0,
                          "key": ["a", "b", "c"], "train_error": 0.0, "test_error": 0.1})
    assert sweep_chart(frame, "hidden", "neurons", "widths")["xAxis"][0]["data"] == ["10/5", "100/40",
                                                                                    "600/240"]


def test_a_click_on_a_train_or_test_marker_selects_that_run():
    frame = sweep_frame()
    option = sweep_chart(frame, "l2", "l2", "lambda")
    runs = [s for s in option["series"] if s.get("id") == "runs"][0]
    for index, point in enumerate(runs["data"]):
        selection = {"selected": [{"series_index": 6, "series_id": "runs", "data_indices": [index]}]}
        key = clicked_run(selection, frame)
        assert key == f"{frame['l2'].iloc[index % 12]:g}-{point['value'][3]}"  # its own λ and seed
    assert clicked_run({"selected": []}, frame) is None
    assert clicked_run(None, frame) is None
    assert clicked_run({"selected": [{"series_id": "runs", "data_indices": [99]}]}, frame) is None


def test_only_the_selected_runs_two_markers_are_outlined_and_seeds_sit_apart():
    frame = sweep_frame()
    chosen = frame["key"].iloc[5]
    runs = [s for s in sweep_chart(frame, "l2", "l2", "lambda", chosen)["series"] if s.get("id") == "runs"][0]
    outlined = [point["name"] for point in runs["data"] if point["itemStyle"].get("borderColor") == "#000"]
    assert outlined == [f"{chosen} train_error", f"{chosen} test_error"]
    assert len({point["name"] for point in runs["data"]}) == len(runs["data"])  # selection is by name
    at_first_value = sorted(point["value"][0] for point in runs["data"][:3])
    assert at_first_value[0] < at_first_value[1] < at_first_value[2] and at_first_value[1] == 3  # λ 0.3
    unselected = sweep_chart(frame, "l2", "l2", "lambda")["series"][-1]["data"]
    assert not any("borderColor" in point["itemStyle"] for point in unselected)


def test_confusion_chart_colours_the_errors_and_a_click_names_its_cell():
    matrix = np.arange(100).reshape(10, 10)
    option = confusion_chart(matrix)
    errors, diagonal = ([cell["value"] for cell in s["data"]] for s in option["series"])
    json.dumps(option)
    assert len(errors) == 90 and all(p != t and count == 10 * t + p for p, t, count in errors)
    assert diagonal == [[d, d, 11 * d] for d in range(10)]
    for index, (predicted, true, _) in enumerate(errors):
        selection = {"selected": [{"series_index": 0, "data_indices": [index]}]}
        assert clicked_cell(selection) == (str(true), str(predicted))
    assert clicked_cell({"selected": [{"series_index": 1, "data_indices": [3]}]}) == ("3", "3")
    assert clicked_cell({"selected": []}) is None
    names = [cell["name"] for s in option["series"] for cell in s["data"]]
    assert len(set(names)) == 100  # selection is by name: one cell, never a column
    outlined = confusion_chart(matrix, (4, 9))["series"][0]["data"]
    assert [c["name"] for c in outlined if "itemStyle" in c] == ["true 4, predicted 9"]


def test_history_chart_draws_train_and_validation_in_two_colours():
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.5, 0.3, 0.2], "val_loss": [0.4, 0.35, 0.3]})
    option = history_chart(history, "loss", "Loss")
    train, validation = option["series"]
    assert train["data"] == [[1, 0.5], [2, 0.3], [3, 0.2]] and validation["data"][2] == [3, 0.3]
    assert train["color"] != validation["color"]
    assert option["xAxis"]["max"] == 3 and option["xAxis"]["interval"] == 1
    long = pd.DataFrame({"epoch": range(1, 61), "loss": 0.1, "val_loss": 0.2})
    ticks = history_chart(long, "loss", "Loss")["xAxis"]
    assert (ticks["min"], ticks["max"], ticks["interval"]) == (0, 60, 10)  # 0, 10, … 60: evenly


def test_a_grid_cell_is_its_seeds_mean_and_a_click_on_it_selects_its_first_seed():
    frame = pd.DataFrame({"hidden": ["100/40", "100/40", "25/15", "100/40", "25/15"],
                          "l2": [0.01, 0.01, 0.0, 0.0, 0.01], "seed": [1, 0, 0, 0, 0],
                          "test_error": [0.03, 0.01, 0.05, 0.04, 0.06],
                          "train_error": [0.0, 0.02, 0.01, 0.03, 0.04], "key": ["b1", "b0", "a", "c", "d"]})
    cells = grid_cells(frame)
    assert list(zip(cells["hidden"], cells["l2"])) == [("100/40", 0.0), ("100/40", 0.01), ("25/15", 0.0),
                                                       ("25/15", 0.01)]  # widths as given, λ rising
    assert cells["test_error"].tolist() == pytest.approx([0.04, 0.02, 0.05, 0.06])
    assert cells["seeds"].tolist() == [1, 2, 1, 1] and cells["key"].tolist() == ["c", "b0", "a", "d"]
    option = grid_chart(cells, selected="b1")  # a later seed: its cell is outlined all the same
    markers = option["series"][1]["data"]
    assert [m["value"][:2] for m in markers] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert [bool(m["itemStyle"]) for m in markers] == [False, True, False, False]
    assert option["xAxis"]["data"] == ["100/40", "25/15"] and option["yAxis"]["data"] == ["0", "0.01"]
    assert markers[1]["value"][2:5] == ["2.00%", "1.00%", 2]
    click = {"selected": [{"series_id": GRID_CELLS, "data_indices": [1]}]}
    assert clicked_cell_run(click, cells) == "b0"
    assert clicked_cell_run({"selected": [{"series_id": GRID_CELLS, "data_indices": [9]}]}, cells) is None
    assert clicked_cell_run(None, cells) is None
