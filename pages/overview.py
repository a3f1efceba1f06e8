"""Overview: every named model beside the reference, and its training curves."""

from pages.parts.routing import route

route()  # before the imports below: see routing.route

import dataclasses

import streamlit as st

from mnist_core.catalog import REFERENCE_ACCURACY, REFERENCE_SEEDS, seed_spread
from mnist_core.reading.calibration import SPLIT
from pages.parts import charts, common, url_state

common.page_setup()

DESCRIPTIONS = {
    "baseline_mlp": "MLP 784-25-15-10, Adam 1e-3, batch 32, 60 epochs",
    "best_width_mlp": "the width-sweep pair with the best mean test accuracy",
    "reference_cnn": "Conv32-Pool-Conv64-Pool-Conv64-Dense64-Dense32-Dense10, 10 epochs",
    "improved_cnn": "ours: batch norm, dropout, augmentation, cosine LR, 20 epochs",
}

TRAINERS = {"fused": "its share of a sweep trained as one graph", "keras_fit": "one Keras fit"}

st.title("MNIST lab")
st.markdown("A reproduction of a small MNIST study with its own hyperparameters, and models "
            "of our own that beat it. Every number here comes from runs stored in "
            "`cached_results/` or your own store.")
named = common.named_runs()
if not named:
    st.info("No named runs are stored yet: run `python -m mnist_core reproduce` to train them.")
    st.stop()

fp = common.fingerprint()
rows = []
for name, run in named.items():
    seeds = [common.run_by_key(dataclasses.replace(run.config, seed=s).key(fp)) for s in REFERENCE_SEEDS]
    reference = REFERENCE_ACCURACY.get(name)
    how_trained = TRAINERS.get(run.metrics["trainer"], run.metrics["trainer"])
    rows.append({
        "model": name,
        "what": DESCRIPTIONS.get(name, run.config.label),
        "parameters": f"{run.metrics['param_count']:,}",
        "reference": f"{reference:.2%}" if reference else "—",
        "ours (seed 0)": f"{run.test_accuracy:.2%}",
        "ours, mean ± std": seed_spread(r.test_accuracy for r in seeds if r is not None),
        "train accuracy": f"{run.train_accuracy:.2%}",
        "training time": f"{run.metrics['wall_time_s']:.0f} s ({how_trained})",
    })
st.html(charts.models_table(rows))  # wraps its text at any width; a card per model on a phone

st.subheader("Training curves")
default = common.selected_run() or named.get("reference_cnn") or next(iter(named.values()))
run = common.selected_run_box("Run", "overview_run", default)
history = common.read_or_stop(common.history_of, run.key)
left, right = st.columns(2)
for column, metric in ((left, "loss"), (right, "accuracy")):
    title = f"{metric.capitalize()} (validation = test set)"
    column.echarts_chart(charts.history_chart(history, metric, title), height=charts.HISTORY_HEIGHT,
                         renderer="svg")
low = history["val_loss"].idxmin()
st.caption(f"Lowest validation loss {history['val_loss'][low]:.4f} at epoch "
           f"{int(history['epoch'][low])} of {len(history)}; final {history['val_loss'].iloc[-1]:.4f}.")

def what_scaling_did(c) -> str:
    """In words, from the temperature and from the ECE measured before and after."""
    if 0.95 <= c.temperature <= 1.05:
        return "almost nothing: already calibrated"
    change = "softened its probabilities" if c.temperature > 1 else "sharpened its probabilities"
    if c.after.ece > c.before.ece:
        return (f"{change}, yet the ECE measured on the other half rose: the model was as well "
                "calibrated as this half can tell")
    return f"{change}: they were {'over' if c.temperature > 1 else 'under'}confident"


st.subheader("How far each model's confidence can be trusted")
calibrations, problems = {}, []
for name, run in named.items():
    try:
        calibrations[name] = common.calibration_of(run.key)
    except (ValueError, OSError, common.RunUnavailable) as exc:
        problems.append(f"{name}: {exc}")
for problem in problems:
    st.warning(f"Not calibrated: {problem}")
if calibrations:
    st.html(charts.models_table([{
        "model": name,
        "ECE as given": f"{c.before.ece:.2%}",
        "temperature": f"{c.temperature:.2f}",
        "ECE after scaling": f"{c.after.ece:.2%}",
        "what scaling did": what_scaling_did(c),
    } for name, c in calibrations.items()]))
    st.caption(f"Expected calibration error (ECE): the gap between how sure a model says it is and how "
               f"often it is right, averaged over 15 confidence bins. Temperature scaling divides the "
               f"logits by one number per model; {SPLIT}. The Draw page shows the scaled probabilities.")
    names = list(calibrations)
    first = "baseline_mlp" if "baseline_mlp" in names else names[0]
    diagram = [url_state.Setting("diagram", "calibration_model", first, url_state.one_of(names))]
    url_state.restore(diagram)
    chosen = st.selectbox("Reliability diagram of", names, key="calibration_model")
    url_state.keep(diagram)
    st.echarts_chart(charts.reliability_chart(calibrations[chosen], chosen), height=charts.HISTORY_HEIGHT,
                     renderer="svg")
    st.caption("Each point is a bin of confidence; its area grows with the images in it (hover for the "
               "count): a small point is a few images, and its accuracy is a rough one.")
