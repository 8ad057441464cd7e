"""A clearly labelled 'coming soon' page for features whose issue has not landed yet."""

from __future__ import annotations

import streamlit as st

from oaviz.ui.layout import page_header
from oaviz.ui.navigation import page_by_file


def render(file: str, *, summary: str, coming: list[str], issue: int, needs: str = "") -> None:
    """Header of the page ``file`` plus what it will do, which issue brings it, and what works now."""
    page = page_by_file(file)
    page_header(page.title, summary, page.icon)
    st.info(f"**Coming soon — this page is a placeholder.** The {page.title.lower()} view arrives with "
            f"issue {issue}; nothing on this page computes anything yet.", icon=":material/construction:")
    with st.container(border=True):
        st.markdown("**What this page will show**")
        st.markdown("\n".join(f"- {item}" for item in coming))
        if needs:
            st.caption(f"Needs: {needs}")
    st.markdown("Meanwhile you can:")
    c1, c2 = st.columns(2)
    with c1:
        st.page_link("pages/data.py", label="Browse and import cohorts", icon=":material/database:")
    with c2:
        st.page_link("pages/models_training.py", label="Train models and follow jobs", icon=":material/model_training:")
