"""The Draw page's readout: one HTML element with the input, every model's reading and the count."""

import base64
import io
import re

import numpy as np
from PIL import Image

from pages.parts.charts import drawing_invitation, drawing_readout


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
