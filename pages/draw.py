"""Draw a digit and watch every named model (and the selected run) classify it live."""

from pages.parts.routing import route

route()  # before the imports below: see routing.route

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from pages.parts import common, url_state

common.page_setup()

st.title("Draw a digit")


# This session's models as its last full run found them: a stroke reruns only the drawing area,
# and looking them up again (the stores listed seven times) would add 8 ms to every stroke.
MODELS = "_draw_models"
st.session_state.pop(MODELS, None)


def models_to_read() -> tuple[dict[str, str], list[str]]:
    """(run key by model name for the named runs and the selected run that can be read now, a
    line for each left out)."""
    if MODELS not in st.session_state:
        models = {name: run.key for name, run in common.named_runs().items()}
        selected = common.selected_run()
        if selected is not None and selected.key not in models.values():
            models[f"selected: {selected.config.label}"] = selected.key
        st.session_state[MODELS] = common.loadable(models)
    return st.session_state[MODELS]


# A choice of widths, not a slider: a held arrow key on a slider sent a new width every few
# milliseconds, and a burst of them sometimes made Streamlit mount the canvas anew, empty, while
# the reading of the erased drawing stayed.
STROKE_WIDTHS = (12, 16, 20, 24, 28, 32, 36, 40)


def always_settings() -> list[url_state.Setting]:
    """The page's choices kept in the URL always."""
    return [url_state.Setting("inside", "look_inside", False, url_state.yes_no),
            url_state.Setting("stroke", "stroke_width", 20, url_state.one_of(STROKE_WIDTHS))]


def inside_settings(names: list[str]) -> list[url_state.Setting]:
    """The page's choices kept in the URL while Look inside is on."""
    default = next((n for n in names if n.startswith("selected: ")), None) or (
        "improved_cnn" if "improved_cnn" in names else names[0])
    return [url_state.Setting("model", "inside_model", default, url_state.one_of(names)),
            url_state.Setting("filters", "every_filter", False, url_state.yes_no)]


@st.fragment
def drawing_area() -> None:
    """The canvas and what the models make of it: a stroke reruns only this."""
    always, when_inside = always_settings(), []
    url_state.restore(always)
    # Above the canvas: turned on, the inside view sits beside the reading, in view with the canvas.
    toggle_column, model_column, _ = st.columns([2.6, 3, 4.4], vertical_alignment="bottom")
    inside = toggle_column.toggle(
        "Look inside a model", key="look_inside",
        help="Which pixels decide, the nearest training digits and each layer's activity, for one "
             "model, after every stroke")  # off until asked for: the plain reading stays as fast
    models, problems = models_to_read() if inside else ({}, [])
    inside = inside and bool(models)
    if inside:
        when_inside = inside_settings(list(models))
        url_state.restore(when_inside)
        inside_name = model_column.selectbox("Model to look inside", list(models), key="inside_model")
        draw_column, result_column, beside = st.columns([3, 3.6, 3.4])
    else:
        draw_column, result_column = st.columns([3, 7])
    with draw_column:
        stroke = st.session_state.get("stroke_width", 20)
        st.caption("Your digit")  # short and on the left: the canvas's toolbar shows at the right
        canvas = st_canvas(stroke_width=stroke, stroke_color="#FFFFFF", background_color="#000000",
                           height=280, width=280, drawing_mode="freedraw", return_image_data=True,
                           update_streamlit=True, key="canvas")
        summary = st.empty()  # the reading in a line, right under the canvas (in view on a phone)
        # Cleared in the browser (CANVAS_SCRIPT), at once: a new canvas from the server came a
        # rerun later, and took with it a stroke begun on the old one meanwhile.
        st.button("Clear", key="clear_canvas")
        # below the canvas: the canvas's toolbar (undo, redo, clear) appears above it on hover
        st.segmented_control("Stroke width", STROKE_WIDTHS, key="stroke_width", required=True)

    # Imported only now, with the canvas already sent: on a fresh server these imports and the
    # runs' look-up below take about a second that a first visitor would otherwise spend waiting
    # for the canvas.
    from mnist_core.reading.neighbours import busy
    from mnist_core.reading.predict import disagreements
    from mnist_core.reading.preprocess import PreprocessError
    from mnist_core.reading.reading import embedding_model, read
    from pages.parts import charts, inside_view

    if not inside:
        models, problems = models_to_read()
    strokes = len((canvas.json_data or {}).get("objects", []))
    with result_column:
        for problem in problems:
            st.warning(problem)
        if not models:
            st.info("No models are stored yet: run `python -m mnist_core reproduce`.")
            return
        keys = tuple(models.items())
        temperatures, check, notes = common.read_or_stop(common.readers, keys)
        reading = None
        # loaded before the first stroke
        predict = common.read_or_stop(common.predictor, keys, embedding_model(check))
        try:
            if canvas.image_data is not None:
                busy()  # placing training digits for a look inside, if under way, waits meanwhile
                reading = read(canvas.image_data, predict, check, temperatures)
        except PreprocessError as exc:
            st.error(f"Could not read the drawing: {exc}")
        if reading is None or reading.image28 is None:
            st.html(charts.drawing_invitation(list(models), reading.extent if reading and
                                              reading.too_small else None, strokes))
        else:
            probabilities = reading.probabilities
            if inside and inside_name in probabilities:  # its card first: in view beside its maps
                probabilities = {inside_name: probabilities[inside_name], **probabilities}
            st.html(charts.drawing_readout(reading.image28, probabilities, disagreements(probabilities),
                                           strokes, bool(reading.not_a_digit), tuple(temperatures)))
            summary.html(charts.reading_summary(probabilities, bool(reading.not_a_digit)))
        for note in notes:
            st.caption(note)
    image28 = reading.image28 if reading is not None else None

    if inside:  # TensorFlow is loaded for this alone (its gradients), in the background
        inside_view.show(inside_name, models[inside_name], image28, strokes, beside)
        url_state.keep(always + when_inside)
    else:
        url_state.keep(always, hidden=inside_settings(list(models)))


# The canvas's toolbar has an Edit toggle that turns drawing into selecting and moving strokes,
# with no sign on the canvas that drawing is off: on a page for drawing digits it only confuses,
# so it is hidden, with the buttons that act on a selection, and the upload button (every stroke
# already updates the app: it would only raise the question what it is for). The canvas lives
# in a shadow root that page styles do not reach, so a constant script (no visitor input) adds
# the style there. The same script makes the Clear button press the toolbar's own reset, which
# empties the canvas in place and sends the empty drawing; once per browser tab, however often
# the page is shown.
CANVAS_SCRIPT = """<script>
(() => {
  if (window.mnistLabCanvas) return;
  window.mnistLabCanvas = true;
  const css = ['Edit', 'Bring forward', 'Send backward', 'Delete selected',
               'Update the app with this drawing']
    .map(title => `.dc-toolbar button[title="${title}"]`).join(', ') + ' {display: none !important}';
  const toolbars = () => [...document.querySelectorAll('[data-testid=stBidiComponentIsolated]')]
    .map(host => host.shadowRoot).filter(root => root && root.querySelector('.dc-toolbar'));
  let queued = false;
  const patch = () => {
    queued = false;
    for (const root of toolbars()) {
      if (!root.querySelector('style[data-lab]')) {
        const style = document.createElement('style');
        style.dataset.lab = 'hide-editing';
        style.textContent = css;
        root.appendChild(style);
      }
    }
  };
  new MutationObserver(() => { if (!queued) { queued = true; requestAnimationFrame(patch); } })
    .observe(document.body, {childList: true, subtree: true});
  patch();
  document.addEventListener('click', event => {
    if (!event.target.closest('.st-key-clear_canvas button')) return;
    for (const root of toolbars()) root.querySelector('button[title="Reset canvas & history"]')?.click();
  }, true);
})();
</script>"""
drawing_area()
st.html(CANVAS_SCRIPT, unsafe_allow_javascript=True)
models_for_photos = models_to_read()[0]
if models_for_photos:
    from pages.parts import photo_view

    photo_view.photo_area(models_for_photos)
