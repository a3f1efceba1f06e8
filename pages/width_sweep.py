"""Width sweep: train and test error against the number of hidden neurons."""

from pages.parts.routing import route

route()  # before the imports below: see routing.route

import streamlit as st

from pages.parts import common, sweep_view

common.page_setup()

st.title("Width sweep")
st.markdown("Two hidden ReLU layers, no regularization: how error changes as the network "
            "widens from 10/5 to 1200/480 neurons.")
sweep_view.render("width")
