"""Lambda sweep: train and test error against the L2 penalty on the 25-15 MLP."""

from pages.parts.routing import route

route()  # before the imports below: see routing.route

import streamlit as st

from pages.parts import common, sweep_view

common.page_setup()

st.title("L2 regularization sweep")
st.markdown("MLP 784-25-15-10, L2 penalty λ on the hidden kernels. Too little λ overfits "
            "(train error far below test error); too much underfits (both rise).")
sweep_view.render("lambda")
