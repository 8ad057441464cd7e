"""Page furniture shared by every page: header, one-shot messages, the 'needs a cohort' guard."""

from __future__ import annotations

import streamlit as st

from oaviz.data.cohort import Cohort
from oaviz.data.errors import DataError
from oaviz.services.model_cards import format_seconds  # noqa: F401 (pages use layout.format_seconds)
from oaviz.ui import loaders, state
from oaviz.ui.frame import ensure_frame


def page_header(title: str, subtitle: str = "", icon: str | None = None) -> None:
    """Title (the page's name, as in the menu) and a one-line explanation of the page.

    Call it first on every page: it also reruns through app.py when Streamlit started
    the page file on its own (see ``oaviz.ui.frame``).
    """
    ensure_frame()
    st.title(f":material/{icon}: {title}" if icon else title, anchor=False)
    if subtitle:
        st.caption(subtitle)
    shown = state.take_flash()
    if shown:
        kind, text = shown
        getattr(st, kind if kind in ("success", "info", "warning", "error") else "info")(text)


def current_cohort() -> Cohort | None:
    """The cohort picked in the sidebar, or None with a message saying why there is none."""
    path = state.selected_cohort()
    if not path:
        st.info("No cohort yet: generate or import one on the **Data** page.", icon=":material/info:")
        return None
    try:
        return loaders.cohort(path)
    except DataError as e:
        st.error(f"The selected cohort cannot be opened: {e}", icon=":material/error:")
        return None

