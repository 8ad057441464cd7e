"""The app frame (page config, navigation, shared sidebar) and the guard that keeps pages inside it.

Streamlit still supports the legacy multipage mode in which files in a folder
called ``pages/`` next to the entry script run on their own. Until some
session has called ``st.navigation``, Streamlit picks that mode: on the first
request a fresh server gets for a deep link such as ``/models_training``, and
in every ``AppTest.switch_page`` run. ``ensure_frame()`` (called by
``layout.start_page``, the first call of every page) notices that the frame
is not around the page, draws it and runs the page inside it, then stops the
outer run — in the same script run, so a button click is not lost to a rerun.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager

import streamlit as st

from oaviz.ui.demo import demo_mode, start_visit
from oaviz.ui.navigation import streamlit_pages

_local = threading.local()  # one script thread per session run
# A file: one JSON line per script run (page title, wall and CPU seconds of the run's thread), for benches
# that tell the server's share of a click from the browser's (bench/bench_visitors.py). Unset: nothing written.
RUN_TIMES_ENV = "OAVIZ_RUN_TIMES"
_times_lock = threading.Lock()


def _note_run_time(page, t0: float, c0: float) -> None:
    path = os.environ.get(RUN_TIMES_ENV)
    if not path:
        return
    rec = {"t": round(time.time(), 3), "page": getattr(page, "title", "") or "",
           "wall_s": round(time.perf_counter() - t0, 4), "cpu_s": round(time.thread_time() - c0, 4)}
    with _times_lock, open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


@contextmanager
def _inside_frame():
    _local.active = True
    try:
        yield
    finally:
        _local.active = False


def run_app() -> None:
    """Everything app.py does: page config, navigation, the default cohort, the sidebar, the page."""
    from oaviz.ui import loaders, sidebar

    t0, c0, page = time.perf_counter(), time.thread_time(), None
    try:
        st.set_page_config(page_title="oaviz — OA latent explorer", page_icon=":material/scatter_plot:",
                           layout="wide", initial_sidebar_state="expanded",
                           menu_items={"About": "oaviz: interactive latent-space exploration of generative models "
                                                "of osteoarthritis radiographs."})
        if demo_mode():
            # Visitors see an error's type, never a traceback (config.toml says the same; this cannot be overridden).
            st.set_option("client.showErrorDetails", "type")
        page = st.navigation(streamlit_pages(), position="sidebar", expanded=True)
        start_visit()                    # jobs are started for this visitor; the demo's per-visitor spaces
        loaders.clean_crash_litter()     # once per server: temporaries of crashed imports, jobs, caches
        loaders.warm_up_projections()    # once per server, in the background: UMAP's JIT compilation
        loaders.ensure_default_cohort()  # generated once, on the very first start; cached afterwards
        loaders.serving_threads()        # once per server: one torch thread per call (after the first start's generation)
        sidebar.render()
        with _inside_frame():
            page.run()
    finally:                             # st.stop / st.rerun end a run by raising: it is timed all the same
        _note_run_time(page, t0, c0)


def ensure_frame() -> None:
    """Run the page through the frame when Streamlit started the page file on its own."""
    if getattr(_local, "active", False):
        return
    run_app()
    st.stop()  # the frame has run this page already; end the outer (legacy-mode) run here
