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


# A switch of page by the sidebar is one history entry: Streamlit pushes the new page's address,
# then, a moment later, pushes it again with the query the page writes (the selected run), so
# that Back led to the bare address, where the page wrote its query again: Back looked dead.
# The second push, on the same page within a moment of the switch, replaces the first instead.
ONE_ENTRY_PER_SWITCH = """<script>
(() => {
  if (window.mnistLabHistory) return;
  window.mnistLabHistory = true;
  const push = history.pushState.bind(history);
  let switched = null;  // {path, at} of the last push that changed the page
  history.pushState = (state, title, url) => {
    const target = new URL(url, location.href);
    if (target.pathname !== location.pathname) {
      switched = {path: target.pathname, at: performance.now()};
    } else if (switched && switched.path === target.pathname && !location.search &&
               performance.now() - switched.at < 1500) {
      switched = null;
      return history.replaceState(state, title, url);
    }
    return push(state, title, url);
  };
})();
</script>"""


def run_app() -> None:
    """app.py: page config, navigation, and the chosen page."""
    st.set_page_config(page_title="MNIST lab", page_icon=_icon(), layout="wide")
    navigation = _navigation()
    st.sidebar.html(ONE_ENTRY_PER_SWITCH, unsafe_allow_javascript=True)
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
