"""oaviz: the Streamlit entry point. Page config, navigation over pages/, shared sidebar — no compute here.

Run with `streamlit run app.py` (or `make demo`). The frame lives in oaviz.ui.frame so
that a page Streamlit starts on its own (legacy pages/ mode) can draw it too.
"""

from oaviz.ui.frame import run_app

run_app()
