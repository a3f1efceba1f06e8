"""Overview: the named models and their numbers."""

import streamlit as st

from mnist_core.data import STANDARD_FINGERPRINT
from mnist_core.store import Stores
from mnist_core.sweeps import named_runs

st.title("MNIST lab")
runs = named_runs(Stores.default(), STANDARD_FINGERPRINT)
if not runs:
    st.info("No results yet: run `python -m mnist_core reproduce` to train the reference study.")
for name, run in runs.items():
    st.write(f"**{name}**: {run.config.label}, test accuracy {run.test_accuracy:.2%}")
