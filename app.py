"""Entry point of the MNIST lab dashboard: routes to the pages, nothing else."""

import streamlit as st

st.set_page_config(page_title="MNIST lab", page_icon="✏️", layout="wide")
navigation = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon="🏠", default=True),
])
navigation.run()
