"""Lambda x width grid: test error at every L2 penalty and every width, as a heat map."""

from pages.parts.routing import route

route()  # before the imports below: see routing.route

import streamlit as st

from pages.parts import common, sweep_view

common.page_setup()

st.title("λ × width grid")
st.markdown("The two sweeps at once: an MLP of each width trained at each L2 penalty λ. Read a "
            "column for the best λ at that width: is it the same at every width?")
sweep_view.render("grid")
