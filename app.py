"""Entry point of the MNIST lab dashboard: routes to the pages, nothing else."""

import os

import streamlit as st

from pages.parts.common import through_navigation

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
st.set_page_config(page_title="MNIST lab", page_icon=":material/draw:", layout="wide")
navigation = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page("pages/lambda_sweep.py", title="Lambda sweep", icon=":material/tune:"),
    st.Page("pages/width_sweep.py", title="Width sweep", icon=":material/width:"),
    st.Page("pages/errors.py", title="Errors", icon=":material/error:"),
    st.Page("pages/draw.py", title="Draw", icon=":material/draw:"),
])
with through_navigation():
    navigation.run()
