"""Draw a digit and watch every named model (and the selected run) classify it live."""

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from mnist_core.predict import classify, disagreements
from mnist_core.preprocess import PreprocessError, to_mnist
from pages.parts import charts, common

common.page_setup()

st.title("Draw a digit")
named = common.named_runs()
models_to_use = {name: run.key for name, run in named.items()}
selected = common.selected_run()
if selected is not None and selected.key not in models_to_use.values():
    models_to_use[f"selected: {selected.config.label}"] = selected.key
models_to_use, problems = common.loadable(models_to_use)
for problem in problems:
    st.warning(problem)
if not models_to_use:
    st.info("No models are stored yet: run `python -m mnist_core reproduce`.")
    st.stop()


def _clear() -> None:
    st.session_state.canvas_generation += 1  # a new canvas: the old one and its strokes go


@st.fragment
def drawing_area() -> None:
    """The canvas and what the models make of it: a stroke reruns only this."""
    st.session_state.setdefault("canvas_generation", 0)
    draw_column, result_column = st.columns([3, 7])
    with draw_column:
        stroke = st.slider("Stroke width", 8, 40, 20, key="stroke_width")
        canvas = st_canvas(stroke_width=stroke, stroke_color="#FFFFFF", background_color="#000000",
                           height=280, width=280, drawing_mode="freedraw", return_image_data=True,
                           update_streamlit=True, key=f"canvas_{st.session_state.canvas_generation}")
        st.button("Clear", key="clear_canvas", on_click=_clear)  # before the rerun: one, not two

    try:
        image28 = to_mnist(canvas.image_data) if canvas.image_data is not None else None
    except PreprocessError as exc:
        image28 = None
        st.error(f"Could not read the drawing: {exc}")

    with result_column:
        # loaded before the first stroke
        predict = common.read_or_stop(common.predictor, tuple(models_to_use.items()))
        if image28 is None:
            st.html(charts.drawing_invitation(list(models_to_use)))
        else:
            probabilities = classify(image28, predict)
            strokes = len((canvas.json_data or {}).get("objects", []))
            st.html(charts.drawing_readout(image28, probabilities, disagreements(probabilities), strokes))


drawing_area()
