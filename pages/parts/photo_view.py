"""The Draw page's photo input: digits written on paper, from a file or the camera, read as the
canvas is read (mnist_core.reading.reading.read_picture). What a visitor uploads stays in memory:
nothing of it is written to disk.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from mnist_core.reading.neighbours import busy
from mnist_core.reading.predict import disagreements
from mnist_core.reading.preprocess import PreprocessError
from mnist_core.reading.reading import ImageFileError, embedding_model, image_of_bytes, read_picture
from pages.parts import charts, common, inside_view

BOX = (230, 60, 40)  # the colour of each found digit's box


@st.fragment
def photo_area(models_to_use: dict[str, str]) -> None:
    """A photo's upload or capture and what the models make of each digit in it: a new photo
    reruns only this."""
    st.subheader("Or show it digits written on paper")
    upload_column, camera_column = st.columns([5, 5])
    upload = upload_column.file_uploader(
        "A photo or scan (PNG or JPEG)", type=["png", "jpg", "jpeg", "mpo"], key="photo_upload",
        help="A digit or a row of digits (such as 2024) written with a pen or pencil on paper. "
             "Read in memory: nothing is kept.")
    snapshot = None
    if camera_column.toggle("Use the camera", key="photo_camera",
                            help="Take the photo here, where the browser has a camera"):
        snapshot = camera_column.camera_input("Hold the paper in view and take the photo",
                                              key="photo_snapshot")
    photo = snapshot or upload
    if photo is None:
        st.caption("Light and paper need not be perfect: the paper's shade, a shadow and ruled or "
                   "squared paper are divided out.")
        return
    try:
        rgba = image_of_bytes(photo.getvalue(), photo.name)
    except ImageFileError as exc:
        st.error(str(exc))
        return
    keys = tuple(models_to_use.items())
    temperatures, check, _ = common.read_or_stop(common.readers, keys)
    predict = common.read_or_stop(common.predictor, keys, embedding_model(check))
    busy()  # placing training digits for a look inside, if under way, waits meanwhile
    try:
        picture = read_picture(rgba, predict, check, temperatures)
    except PreprocessError as exc:
        st.error(f"Could not read the photo: {exc}")
        return
    found_column, reading_column = st.columns([4, 6])
    found_column.image(outlined(rgba, [digit.box for digit in picture.found]),
                       caption=f"{photo.name}: {picture.polarity}")
    with reading_column:
        show_readings(picture, tuple(temperatures))
    readable = [i for i, reading in enumerate(picture.readings) if reading.image28 is not None]
    if readable and st.toggle("Look inside a model for this photo", key="photo_inside"):
        names = list(models_to_use)
        model_column, digit_column, _ = st.columns([3, 3, 4])
        name = model_column.selectbox("Model to look inside", names, key="photo_inside_model",
                                      index=names.index("improved_cnn") if "improved_cnn" in names else 0)
        which = digit_column.selectbox("Digit", readable, format_func=lambda i: f"digit {i + 1}",
                                       key="photo_inside_digit") if len(readable) > 1 else readable[0]
        inside_view.show(name, models_to_use[name], picture.readings[which].image28, 0, st.container(),
                         filters_key="photo_every_filter")


def show_readings(picture, calibrated: tuple[str, ...]) -> None:
    """The number read, then each digit's readout as the canvas's (left to right)."""
    readings = picture.readings
    if not readings:
        st.html('<div data-testid="photo-number" style="font-size:15px">No digit found in this '
                "photo: write a digit dark and large enough on light paper, and take the photo "
                "from above.</div>")
        return
    if len(readings) == 1:
        line = (charts.reading_summary(readings[0].probabilities, bool(readings[0].not_a_digit))
                if readings[0].image28 is not None else "Too small to read.")
    else:
        line = (f"Read as the number <b>{picture.number()}</b>: {len(readings)} digits, left to "
                "right (? marks one that is no digit or too small).")
    st.html(f'<div data-testid="photo-number" style="font-size:15px;margin:2px 0">{line}</div>')
    for index, reading in enumerate(readings):
        where = f"Digit {index + 1} of {len(readings)}, from the photo." if len(readings) > 1 else \
            "Read from the photo."
        if reading.image28 is None:
            st.caption(f"{where} Too small to read.")
            continue
        st.html(charts.drawing_readout(reading.image28, reading.probabilities,
                                       disagreements(reading.probabilities), 0,
                                       bool(reading.not_a_digit), calibrated, source=where))


def outlined(rgba: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> Image.Image:
    """The photo as read (RGB), each found digit's box drawn on it."""
    image = Image.fromarray((rgba[..., :3] * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    line = max(2, max(image.size) // 200)
    for left, top, width, height in boxes:
        draw.rectangle((left - line, top - line, left + width + line, top + height + line),
                       outline=BOX, width=line)
    return image
