"""The dashboard's navigation, and the routing of a first visitor's deep link through app.py.

Imports nothing but Streamlit: a page script calls `route()` before its own imports (which take
a second on a cold server), so that Streamlit's stand-in navigation never stays on screen.
"""

from __future__ import annotations

import streamlit as st

PAGES = (  # script, title, icon
    ("pages/overview.py", "Overview", ":material/home:"),
    ("pages/lambda_sweep.py", "Lambda sweep", ":material/tune:"),
    ("pages/width_sweep.py", "Width sweep", ":material/width:"),
    ("pages/grid.py", "λ × width grid", ":material/grid_on:"),
    ("pages/errors.py", "Errors", ":material/error:"),
    ("pages/runs.py", "Runs", ":material/table_rows:"),
    ("pages/draw.py", "Draw", ":material/draw:"),
)
_THROUGH_APP = "_page_runs_through_app"  # set by run_app, taken by route, in each script run


def _navigation():
    return st.navigation([st.Page(script, title=title, icon=icon, default=(i == 0))
                          for i, (script, title, icon) in enumerate(PAGES)])


def run_app() -> None:
    """app.py: page config, navigation, and the chosen page."""
    st.set_page_config(page_title="MNIST lab", page_icon=_icon(), layout="wide")
    navigation = _navigation()
    st.session_state[_THROUGH_APP] = True
    navigation.run()


@st.cache_resource
def _icon():
    """The tab's icon, drawn here: a :material/...: icon is fetched from Google's font servers,
    and a served lab fetches nothing from outside its server."""
    from PIL import Image, ImageDraw

    icon = Image.new("RGB", (32, 32), "black")
    ImageDraw.Draw(icon).line([(9, 7), (23, 7), (13, 26)], fill="white", width=4)  # a drawn 7
    return icon


def route() -> None:
    """Call first in every page script, before its other imports.

    Until some session has called st.navigation, Streamlit serves a folder named pages/ beside
    the entry script as legacy multipage pages: a visitor whose first request is a deep link
    (say /draw) then gets the page script alone, under a navigation of raw file names ("app",
    "draw", ...). Calling st.navigation ends that mode for the server (Streamlit's documented
    behaviour: with st.navigation the pages/ folder is not used), and the rerun comes through
    app.py with our navigation.
    """
    if not st.session_state.pop(_THROUGH_APP, False):
        _navigation()
        st.rerun()
